package dataplane

import (
	"encoding/binary"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
)

// VS/NAT over IPv6, as ip_vs_nat_xmit_v6 and handle_response do it. The
// IPv4 path of nat.go with these differences:
//
//   - IPv6 has no header checksum: only the TCP or UDP checksum is updated
//     incrementally (RFC 1624), for the 16-byte address and the port. A
//     UDP checksum of 0 stays 0 and an update that makes it 0 sends
//     0xffff, as udp_snat_handler and udp_dnat_handler do for either
//     family.
//   - The hop limit is decremented both ways (ttl.go): a client packet's
//     by decrement_ttl in __ip_vs_get_out_rt_v6 (in emit), a reply's by
//     ip6_forward, which the reply passes before IPVS's FORWARD hook. A
//     packet that arrives with hop limit 1 is answered with ICMPv6 Time
//     Exceeded and counted as ttl_exceeded.
//   - Nothing is fragmented. A client packet too big for the real
//     server's MTU gets ICMPv6 Packet Too Big from the VIP, as
//     ensure_mtu_is_adequate answers; a reply too big for the client's
//     gets Packet Too Big back to the real server from the director's
//     IPv6 address on the receiving interface, before the connection's
//     state or counters move, as ip6_forward answers it before IPVS sees
//     the reply. Both are rate-limited and counted as fragmentation-needed
//     is.
//   - A reply is recognised by its source in Snapshot.natSrc6 (the IPv6
//     NAT real servers' address, protocol and port, which the steering
//     program matches too) when its destination is no IPv6 service, and
//     finds its connection through the same reverse index as IPv4's: the
//     index's keys hold 16-byte addresses.

// natSource6 reports whether [addr]:port/proto is an IPv6 VS/NAT real
// server.
func (s *Snapshot) natSource6(addr *[16]byte, proto uint8, port uint16) bool {
	if s.natSrc6.len() == 0 {
		return false
	}
	_, ok := s.natSrc6.lookup(addr, proto, port)
	return ok
}

// keyAddr is the real server's address in the connection table's form:
// the IPv6 address, or the IPv4-mapped one.
func (d *Dest) keyAddr() [16]byte {
	if d.Is6 {
		return d.Addr6
	}
	return mapped4(d.Addr)
}

// csumUpdate6 is header.ChecksumUpdateAddr for a 16-byte field: RFC 1624
// equation 3 over its eight 16-bit words.
func csumUpdate6(check uint16, old, new *[16]byte) uint16 {
	sum := uint64(^check)
	for i := 0; i < 16; i += 2 {
		sum += uint64(^binary.BigEndian.Uint16(old[i:])) + uint64(binary.BigEndian.Uint16(new[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// rewrite6 replaces the destination (dst) or source address and port of
// the IPv6 packet in frame, parsed as pk, and updates the TCP or UDP
// checksum for the change.
func rewrite6(frame []byte, pk *header.Packet, dst bool, addr *[16]byte, port uint16) {
	ip := header.IPv6(frame[pk.L3:])
	l4 := frame[pk.L4:]
	aoff, poff := 8, 0 // source address in the IPv6 header, source port in L4
	if dst {
		aoff, poff = 24, 2
	}
	old := [16]byte(ip[aoff : aoff+16])
	oldPort := binary.BigEndian.Uint16(l4[poff:])
	copy(ip[aoff:aoff+16], addr[:])
	binary.BigEndian.PutUint16(l4[poff:], port)
	switch pk.Proto {
	case header.ProtocolTCP:
		t := header.TCP(l4)
		t.SetChecksum(header.ChecksumUpdate16(csumUpdate6(t.Checksum(), &old, addr), oldPort, port))
	case header.ProtocolUDP:
		u := header.UDP(l4)
		if u.Checksum() == 0 {
			return // sent without a checksum: it stays so
		}
		ck := header.ChecksumUpdate16(csumUpdate6(u.Checksum(), &old, addr), oldPort, port)
		if ck == 0 {
			ck = 0xffff
		}
		u.SetChecksum(ck)
	}
}

// hopLimitLeft reports whether the IPv6 ICMP error in frame may be
// forwarded once more (its hop limit is above 1), and counts ttl_exceeded
// when not: icmpv6_send never answers an error with an error.
func (p *Processor) hopLimitLeft(frame []byte) bool {
	if p.ttlLeft(frame) {
		return true
	}
	p.c.Drops[DropTTLExceeded].Add(1)
	return false
}

// dnat6 forwards an IPv6 client packet to NAT real server d out of eg
// (slot out.Slot), its hop limit already decremented by emit: answered
// with Packet Too Big when it does not fit (quoting it with the
// decremented hop limit, as __ip_vs_get_out_rt_v6 runs decrement_ttl
// before ensure_mtu_is_adequate), or rewritten to d's address and port.
func (p *Processor) dnat6(s *Snapshot, d *Dest, eg *Iface, buf []byte, off, n int, out Out) (Verdict, Out) {
	frame := buf[off : off+n]
	if int(p.pk.TotalLen) > eg.MTU {
		return p.packetTooBig(s, frame, eg.MTU)
	}
	rewrite6(frame, p.pk, true, &d.Addr6, natPort(d, p.pk.DstPort))
	encap.DR(frame, d.MAC, eg.MAC)
	return VerdictForward, out
}

// processReply6 is processReply for a frame from an IPv6 NAT real server.
func (p *Processor) processReply6(s *Snapshot, buf []byte, off, n int) (Verdict, Out) {
	c, pk := p.c, p.pk
	frame := buf[off : off+n]
	rk := &p.rkey
	rk.CAddr, rk.CPort, rk.Proto = pk.DstMapped, pk.DstPort, pk.Proto
	rk.VAddr, rk.VPort = pk.SrcMapped, pk.SrcPort
	r, ok := p.ct.LookupReply(rk)
	if !ok {
		c.Drops[DropReplyNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	// ip6_forward's checks come before IPVS's FORWARD hook: the state and
	// the counters do not move for a packet they refuse.
	if !p.ttlLeft(frame) {
		return p.timeExceeded(s, frame, true), Out{}
	}
	eg := replyEgress(s, &r)
	if eg == nil {
		c.Drops[DropNoEgress].Add(1)
		return VerdictDrop, Out{}
	}
	if int(pk.TotalLen) > eg.MTU {
		return p.replyPacketTooBig(s, frame, eg.MTU)
	}
	ev := conntrack.EvNone
	if pk.Proto == header.ProtocolTCP {
		ev = conntrack.EventOf(pk.TCPFlags)
	}
	if p.ct.TouchReply(&r.Conn, pk.Proto, ev) != conntrack.Hit {
		c.Drops[DropReplyNoConnection].Add(1)
		return VerdictDrop, Out{}
	}
	if svc, d, ok := s.DestByID(r.Conn.Dest); ok {
		p.countOut(svc, d, uint64(pk.TotalLen))
	}
	if p.sp != nil && pk.Proto == header.ProtocolTCP && p.sp.active.Load() {
		if v, o, done := p.synProxyServer(s, &r, buf, off, n); done { // synproxy.go
			return v, o
		}
	}
	rewrite6(frame, pk, false, &r.VAddr, r.VPort)
	p.decTTL(frame)
	var mac [6]byte
	binary.BigEndian.PutUint16(mac[0:2], uint16(r.Hop>>32))
	binary.BigEndian.PutUint32(mac[2:6], uint32(r.Hop))
	encap.DR(frame, mac, eg.MAC)
	return VerdictForward, Out{Off: off, Len: n, Slot: int(r.Hop >> 48)}
}

// replyPacketTooBig answers an IPv6 reply too big for the client-facing
// MTU with Packet Too Big to the real server, quoting the reply as it
// sent it, from the director's IPv6 address on the interface the reply
// came in on (where icmp6_send's route back to the server leads). Without
// such an address the reply is dropped as too_big.
func (p *Processor) replyPacketTooBig(s *Snapshot, frame []byte, mtu int) (Verdict, Out) {
	in := &s.Ifaces[p.ingress]
	if !in.HaveAddr6 {
		p.c.Drops[DropTooBig].Add(1)
		return VerdictDrop, Out{}
	}
	return p.packetTooBigFrom(s, frame, mtu, in.Addr6)
}
