package dataplane

import (
	"encoding/binary"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// ICMPv6 errors about IPv6 VS/NAT connections, as ip_vs_out_icmp_v6 and
// ip_vs_in_icmp_v6 handle them with ip_vs_nat_icmp_v6's rewrite: the two
// directions of nat_icmp.go, for every ICMPv6 error type (destination
// unreachable, packet too big, time exceeded, parameter problem: the
// kernel passes on only informational messages, type 128 and up).
//
//   - From the real server's side, about a packet the director sent it
//     (client -> [RIP]:rport): the connection is the one whose reply key
//     is the quoted packet reversed. The outer source becomes the VIP and
//     the quoted destination [VIP]:vport; the error goes where the
//     connection's replies go, and counts out.
//   - From the client's side, to the VIP, about a reply the client got
//     ([VIP]:vport -> client): the connection is the one whose key is the
//     quoted packet reversed. The outer destination and the quoted source
//     become [RIP]:rport; the error goes to the real server the way the
//     connection's packets go, and counts in.
//
// The quoted packet's TCP or UDP checksum is left alone, as the kernel
// leaves it; the ICMPv6 checksum, which covers the outer addresses
// through the pseudo-header and the whole quote, is updated
// incrementally for every changed word (ip_vs_nat_icmp_v6 has it
// recomputed in full: the same value). A message with a wrong checksum is
// dropped and counted as a bad checksum, as the IPv4 path does. The quote
// is walked through at most header.MaxIPv6ExtHeaders hop-by-hop, routing
// or destination options headers to its TCP or UDP ports; a quoted
// fragment is not translated. The hop limit is decremented as for the
// connection's own packets.

// nat6 handles an IPv6 TCP or UDP frame whose destination is no IPv6
// service when it is a reply from a NAT real server, and reports whether
// it did. ICMPv6 never gets here: the processor hands every ICMPv6 frame
// to natICMP6 first, then to icmpError6 (icmperr6.go).
func (p *Processor) nat6(s *Snapshot, buf []byte, off, n int) (Verdict, Out, bool) {
	pk := p.pk
	if !s.natSource6(&pk.SrcMapped, pk.Proto, pk.SrcPort) {
		return 0, Out{}, false
	}
	v, o := p.processReply6(s, buf, off, n)
	return v, o, true
}

// quoted6 finds the TCP or UDP header of the IPv6 packet an ICMPv6 error
// quotes, in (from its IPv6 header on): its protocol and offset in in, with
// at least its four bytes of ports present.
func quoted6(in []byte) (proto uint8, l4 int, ok bool) {
	if len(in) < header.IPv6Len || in[0]>>4 != 6 {
		return 0, 0, false
	}
	next, off := in[6], header.IPv6Len
	for n := 0; next != header.ProtocolTCP && next != header.ProtocolUDP; n++ {
		ext := next == header.ProtocolRouting || next == header.ProtocolDestOpts || next == header.ProtocolHopByHop && n == 0
		if n == header.MaxIPv6ExtHeaders || !ext || len(in) < off+8 {
			return 0, 0, false
		}
		next, off = in[off], off+(int(in[off+1])+1)*8
	}
	if len(in) < off+4 {
		return 0, 0, false
	}
	return next, off, true
}

// natICMP6 handles an ICMPv6 frame when it is an error about a VS/NAT
// connection, and reports whether it did.
func (p *Processor) natICMP6(s *Snapshot, buf []byte, off, n int) (Verdict, Out, bool) {
	pk := p.pk
	frame := buf[off : off+n]
	msg := frame[pk.L4:pk.End]
	if len(msg) < header.ICMPv6Len || msg[0] == 0 || msg[0] >= 128 {
		return 0, Out{}, false
	}
	in := msg[header.ICMPv6Len:]
	proto, l4, ok := quoted6(in)
	if !ok {
		return 0, Out{}, false
	}
	isrc, idst := [16]byte(in[8:24]), [16]byte(in[24:40])
	isport, idport := binary.BigEndian.Uint16(in[l4:]), binary.BigEndian.Uint16(in[l4+2:])

	// From the real server's side: the quoted packet is client -> RIP.
	if s.natSource6(&idst, proto, idport) {
		rk := &p.rkey
		rk.CAddr, rk.CPort, rk.Proto = isrc, isport, proto
		rk.VAddr, rk.VPort = idst, idport
		r, ok := p.ct.LookupReply(rk)
		if !ok {
			return 0, Out{}, false
		}
		if !icmp6Valid(frame, pk) {
			p.c.Parse[header.BadChecksum].Add(1)
			return VerdictDrop, Out{}, true
		}
		if !p.hopLimitLeft(frame) {
			return VerdictDrop, Out{}, true
		}
		if svc, d, ok := s.DestByID(r.Conn.Dest); ok {
			p.countOut(svc, d, uint64(pk.TotalLen))
		}
		eg := replyEgress(s, &r)
		if eg == nil {
			p.c.Drops[DropNoEgress].Add(1)
			return VerdictDrop, Out{}, true
		}
		if int(pk.TotalLen) > eg.MTU {
			p.c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}, true
		}
		natICMP6Rewrite(frame, pk, false, &r.VAddr, l4, r.VPort)
		var mac [6]byte
		binary.BigEndian.PutUint16(mac[0:2], uint16(r.Hop>>32))
		binary.BigEndian.PutUint32(mac[2:6], uint32(r.Hop))
		encap.DR(frame, mac, eg.MAC)
		return VerdictForward, Out{Off: off, Len: n, Slot: int(r.Hop >> 48)}, true
	}

	// From the client's side, to the VIP: the quoted packet is a reply,
	// VIP:vport -> client.
	si, ok := s.lookup6(&isrc, proto, isport)
	if !ok || pk.DstMapped != isrc {
		return 0, Out{}, false
	}
	k := &p.key
	k.CAddr, k.CPort, k.Proto = idst, idport, proto
	k.VAddr, k.VPort = isrc, isport
	conn, found := p.ct.Lookup(k)
	if !found || conn.Fwd != conntrack.FwdMasq {
		return 0, Out{}, false
	}
	d, live := s.dest(si, conn.Dest)
	if !live || d.Fwd != vs.Masq {
		return 0, Out{}, false
	}
	if !icmp6Valid(frame, pk) {
		p.c.Parse[header.BadChecksum].Add(1)
		return VerdictDrop, Out{}, true
	}
	if !p.hopLimitLeft(frame) {
		return VerdictDrop, Out{}, true
	}
	// ip_vs_in_icmp_v6 counts the error in before it transmits it.
	p.countIn(&s.Services[si], d, uint64(pk.TotalLen))
	eg, ok := p.egress(s, d) // synproxy.go
	if !ok {
		return VerdictDrop, Out{}, true
	}
	if int(pk.TotalLen) > eg.MTU {
		p.c.Drops[DropTooBig].Add(1)
		return VerdictDrop, Out{}, true
	}
	natICMP6Rewrite(frame, pk, true, &d.Addr6, l4, natPort(d, isport))
	if proto == header.ProtocolTCP && p.sp != nil && p.sp.active.Load() {
		p.synProxyICMP6(&conn, frame, l4) // synproxy6.go
	}
	encap.DR(frame, d.MAC, eg.MAC)
	return VerdictForward, Out{Off: off, Len: n, Slot: d.Slot}, true
}

// icmp6Valid checks the ICMPv6 checksum of the message in frame, parsed as
// pk: over the pseudo-header and the whole message.
func icmp6Valid(frame []byte, pk *header.Packet) bool {
	msg := frame[pk.L4:pk.End]
	ph := header.PseudoHeaderChecksumIPv6(header.ProtocolICMPv6, pk.SrcMapped, pk.DstMapped, uint32(len(msg)))
	return header.Checksum(msg, ph) == 0xffff
}

// natICMP6Rewrite is ip_vs_nat_icmp_v6 on the frame: toServer, the outer
// destination and the quoted source address become addr and the quoted
// source port port (a client's error to the real server); otherwise the
// outer source and the quoted destination become addr and the quoted
// destination port port (a real server's error to the client). l4 is the
// quoted TCP or UDP header's offset from the quoted IPv6 header. The
// ICMPv6 checksum is updated for each change and the hop limit
// decremented.
func natICMP6Rewrite(frame []byte, pk *header.Packet, toServer bool, addr *[16]byte, l4 int, port uint16) {
	ip := header.IPv6(frame[pk.L3:])
	msg := header.ICMPv6(frame[pk.L4:pk.End])
	in := msg[header.ICMPv6Len:]
	oaoff, iaoff, poff := 8, 24, 2 // outer source, quoted destination
	if toServer {
		oaoff, iaoff, poff = 24, 8, 0
	}
	ck := msg.Checksum()
	oldOuter, oldInner := [16]byte(ip[oaoff:oaoff+16]), [16]byte(in[iaoff:iaoff+16])
	oldPort := binary.BigEndian.Uint16(in[l4+poff:])
	ck = csumUpdate6(ck, &oldOuter, addr)
	ck = csumUpdate6(ck, &oldInner, addr)
	ck = header.ChecksumUpdate16(ck, oldPort, port)
	copy(ip[oaoff:oaoff+16], addr[:])
	copy(in[iaoff:iaoff+16], addr[:])
	binary.BigEndian.PutUint16(in[l4+poff:], port)
	msg.SetChecksum(ck)
	ip.SetHopLimit(ip.HopLimit() - 1)
}
