package platformtest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/header"
)

// redirect6 decides for an untagged IPv6 frame as the steering program
// does: TCP or UDP after at most header.MaxIPv6ExtHeaders extension
// headers (hop-by-hop first only, routing, destination options), to an
// IPv6 service's
// address, protocol and port (or port 0), for an owner MAC, goes to the
// queue's socket, and so does one from a VS/NAT real server's address,
// protocol and port, or an ICMPv6 error (type 1 to 127) from its address,
// unless it is to a director address; everything else (neighbour
// discovery and all other ICMPv6, fragments) to the kernel. s.mu is held.
func (s *steering) redirect6(ifc *Iface, f []byte) bool {
	c := &s.stats
	ip := f[header.EthernetLen:]
	if len(ip) < header.IPv6Len {
		c.PassTruncated++
		return false
	}
	if ip[0]>>4 != 6 {
		c.PassBadHeader++
		return false
	}
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	toDirector := s.keys[xdpprog.ServiceKey{Addr: dst, Local: true}]
	proto, off := ip[6], header.IPv6Len
	for n := 0; proto != header.ProtocolTCP && proto != header.ProtocolUDP; n++ {
		if proto == header.ProtocolICMPv6 && len(ip) >= off+4 && ip[off] != 0 && ip[off] < 128 && s.natSource6(src) {
			if toDirector {
				c.PassNoService++
				return false
			}
			return s.deliver6(ifc, f, nil, 0)
		}
		ext := proto == header.ProtocolRouting || proto == header.ProtocolDestOpts || proto == header.ProtocolHopByHop && n == 0
		if n == header.MaxIPv6ExtHeaders || !ext {
			c.PassNotL4++
			return false
		}
		if len(ip) < off+8 {
			c.PassTruncated++
			return false
		}
		proto = ip[off]
		off += (int(ip[off+1]) + 1) * 8
	}
	need := 8
	if proto == header.ProtocolTCP {
		need = 20
	}
	if len(ip) < off+need {
		c.PassTruncated++
		return false
	}
	l4 := ip[off:]
	sport, dport := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	reply := !toDirector && (s.keys[xdpprog.ServiceKey{Addr: src, Proto: proto, Port: sport, Source: true}] ||
		s.keys[xdpprog.ServiceKey{Addr: src, Proto: proto, Source: true}])
	if !s.keys[xdpprog.ServiceKey{Addr: dst, Proto: proto, Port: dport}] && !s.keys[xdpprog.ServiceKey{Addr: dst, Proto: proto}] && !reply {
		c.PassNoService++
		return false
	}
	return s.deliver6(ifc, f, l4, proto)
}

// natSource6 reports whether a is a VS/NAT real server's address. s.mu is
// held.
func (s *steering) natSource6(a netip.Addr) bool {
	for k := range s.keys {
		if k.Source && k.Addr == a {
			return true
		}
	}
	return false
}

// deliver6 redirects a matched IPv6 frame for an owner MAC, unless it
// belongs to a local-node flow (l4, its TCP or UDP header, and proto:
// nil for ICMPv6) or its source's prefix is blocked, to the socket of the queue its source port hashes to.
// s.mu is held.
func (s *steering) deliver6(ifc *Iface, f []byte, l4 []byte, proto uint8) bool {
	c := &s.stats
	if !slices.Contains(s.owners, [6]byte(f[:6])) {
		c.PassOtherMAC++
		return false
	}
	var sport uint16
	if l4 != nil {
		sport = binary.BigEndian.Uint16(l4[0:2])
		if s.passLocal6(header.IPv6(f[header.EthernetLen:]), l4, proto) {
			c.PassLocal++
			return false
		}
	}
	if end, ok := s.blocked6[s.blockKey6(netip.AddrFrom16([16]byte(f[header.EthernetLen+8:header.EthernetLen+24])))]; ok && time.Now().Before(end) {
		c.Blocked++
		return true // dropped in XDP
	}
	sock := s.socks[int(sport)%ifc.RxQueues]
	if sock == nil {
		c.PassNoSocket++
		return false
	}
	c.Redirected++
	sock.Deliver(f)
	return true
}

// blockKey6 is the prefix an IPv6 source is blocked by, as the real
// program masks it. s.mu is held.
func (s *steering) blockKey6(src netip.Addr) netip.Prefix {
	bits := s.prefix6
	if bits == 0 {
		bits = xdpprog.DefaultBlockPrefix6
	}
	return netip.PrefixFrom(src, bits).Masked()
}

// block6 blocks src's prefix for d. s.mu is held.
func (s *steering) block6(src netip.Addr, d time.Duration) {
	if s.blocked6 == nil {
		s.blocked6 = map[netip.Prefix]time.Time{}
	}
	s.blocked6[s.blockKey6(src)] = time.Now().Add(d)
}

// SetBlockPrefix6 refuses what the real program's refuses and otherwise
// blocks IPv6 sources by bits from now on, lifting the IPv6 blocks.
func (s *steering) SetBlockPrefix6(bits int) error {
	if bits < 1 || bits > 128 {
		return fmt.Errorf("set IPv6 block prefix /%d: must be 1 to 128 bits", bits)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blockKey6(netip.IPv6Unspecified()).Bits() != bits {
		s.prefix6, s.blocked6 = bits, nil
	}
	return nil
}
