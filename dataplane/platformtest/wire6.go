package platformtest

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/header"
)

// redirect6 decides for an untagged IPv6 frame as the steering program
// does: TCP or UDP after at most header.MaxIPv6ExtHeaders extension
// headers (hop-by-hop first only, routing, destination options), to an
// IPv6 service's
// address, protocol and port (or port 0), for an owner MAC, goes to the
// queue's socket; everything else (neighbour discovery and all ICMPv6,
// fragments) to the kernel. s.mu is held.
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
	proto, off := ip[6], header.IPv6Len
	for n := 0; proto != header.ProtocolTCP && proto != header.ProtocolUDP; n++ {
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
	a := netip.AddrFrom16([16]byte(ip[24:40]))
	if !s.keys[xdpprog.ServiceKey{Addr: a, Proto: proto, Port: dport}] && !s.keys[xdpprog.ServiceKey{Addr: a, Proto: proto}] {
		c.PassNoService++
		return false
	}
	if !slices.Contains(s.owners, [6]byte(f[:6])) {
		c.PassOtherMAC++
		return false
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
