package dataplane

import (
	"encoding/binary"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/encap"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// ICMP errors about VS/NAT connections, as ip_vs_out_icmp and
// ip_vs_in_icmp handle them (with ip_vs_nat_icmp's rewrite):
//
//   - From the real server's side (its own port unreachable, or a
//     router's time exceeded or fragmentation needed) about a packet the
//     director sent it (client -> RIP:rport): the connection is the one
//     whose reply key is the embedded packet reversed. The outer source
//     becomes the VIP, the embedded destination VIP:vport; the error goes
//     to the client the way the connection's replies go, and counts out.
//   - From the client's side, to the VIP, about a reply the client got
//     (VIP:vport -> client): the connection is the one whose key is the
//     embedded packet reversed. The outer destination and the embedded
//     source become RIP:rport; the error goes to the real server the way
//     the connection's packets go, and counts in.
//
// As in ip_vs_nat_icmp the embedded IPv4 header's checksum is made right
// for its new address and the embedded TCP or UDP checksum is left alone
// (the embedded packet is usually cut short, so its checksum cannot be
// checked anyway); the outer IPv4 and the ICMP checksums are updated
// incrementally for every changed word. Only destination unreachable,
// source quench and time exceeded are translated, and an ICMP message
// with a wrong checksum is dropped (counted as a bad checksum), as
// handle_response_icmp refuses one. Anything else stays an unknown
// protocol to the processor.

// ICMP types ip_vs_in_icmp and ip_vs_out_icmp translate.
const (
	icmpDestUnreach  = 3
	icmpSourceQuench = 4
	icmpTimeExceeded = 11
)

// natICMP handles an ICMP frame (pk parsed up to its IPv4 header) when it
// is an error about a VS/NAT connection, and reports whether it did.
func (p *Processor) natICMP(s *Snapshot, buf []byte, off, n int) (Verdict, Out, bool) {
	pk := p.pk
	frame := buf[off : off+n]
	msg := frame[pk.L4:pk.End]
	if len(msg) < header.ICMPv4Len+header.IPv4MinLen+4 {
		return 0, Out{}, false
	}
	switch msg[0] {
	case icmpDestUnreach, icmpSourceQuench, icmpTimeExceeded:
	default:
		return 0, Out{}, false
	}
	in := header.IPv4(msg[header.ICMPv4Len:])
	ihl := in.HeaderLen()
	if in.Version() != header.IPv4Version || ihl < header.IPv4MinLen || len(in) < ihl+4 || in.FragmentOffset() != 0 {
		return 0, Out{}, false
	}
	proto := in.Protocol()
	if proto != header.ProtocolTCP && proto != header.ProtocolUDP {
		return 0, Out{}, false
	}
	isrc, idst := in.Src(), in.Dst()
	ports := in[ihl : ihl+4]
	isport, idport := binary.BigEndian.Uint16(ports[0:2]), binary.BigEndian.Uint16(ports[2:4])

	// From the real server's side: the embedded packet is client -> RIP.
	if s.natSource(idst, proto, idport) {
		rk := &p.rkey
		rk.CAddr, rk.CPort, rk.Proto = mapped4(isrc), isport, proto
		rk.VAddr, rk.VPort = mapped4(idst), idport
		r, ok := p.ct.LookupReply(rk)
		if !ok {
			return 0, Out{}, false
		}
		if !icmpValid(msg) {
			p.c.Parse[header.BadChecksum].Add(1)
			return VerdictDrop, Out{}, true
		}
		vip := [4]byte(r.VAddr[12:16])
		// ip_forward's TTL check, before IPVS sees the error; an ICMP
		// error is never answered with one (ttl.go).
		if !p.ttlLeft(frame) {
			p.c.Drops[DropTTLExceeded].Add(1)
			return VerdictDrop, Out{}, true
		}
		if svc, d, ok := s.DestByID(r.Conn.Dest); ok {
			p.countOut(svc, d, uint64(pk.TotalLen))
		}
		slot := int(r.Hop >> 48)
		if slot >= len(s.Ifaces) {
			p.c.Drops[DropNoEgress].Add(1)
			return VerdictDrop, Out{}, true
		}
		eg := &s.Ifaces[slot]
		if int(pk.TotalLen) > eg.MTU {
			p.c.Drops[DropTooBig].Add(1)
			return VerdictDrop, Out{}, true
		}
		natICMPRewrite(frame, pk, false, vip, false, vip, r.VPort)
		p.decTTL(frame)
		var mac [6]byte
		binary.BigEndian.PutUint16(mac[0:2], uint16(r.Hop>>32))
		binary.BigEndian.PutUint32(mac[2:6], uint32(r.Hop))
		encap.DR(frame, mac, eg.MAC)
		return VerdictForward, Out{Off: off, Len: n, Slot: slot}, true
	}

	// From the client's side, to the VIP: the embedded packet is a reply,
	// VIP:vport -> client.
	si, ok := s.lookup(isrc, proto, isport)
	if !ok || pk.Dst != isrc {
		return 0, Out{}, false
	}
	k := &p.key
	k.CAddr, k.CPort, k.Proto = mapped4(idst), idport, proto
	k.VAddr, k.VPort = mapped4(isrc), isport
	conn, found := p.ct.Lookup(k)
	if !found || conn.Fwd != conntrack.FwdMasq {
		return 0, Out{}, false
	}
	d, live := s.dest(si, conn.Dest)
	if !live || d.Fwd != vs.Masq {
		return 0, Out{}, false
	}
	if !icmpValid(msg) {
		p.c.Parse[header.BadChecksum].Add(1)
		return VerdictDrop, Out{}, true
	}
	// ip_vs_in_icmp counts the error in before it transmits it.
	p.countIn(&s.Services[si], d, uint64(pk.TotalLen))
	eg, ok := p.egress(s, d) // synproxy.go
	if !ok {
		return VerdictDrop, Out{}, true
	}
	// ip_vs_icmp_xmit's decrement_ttl, which answers no ICMP error
	// (ttl.go).
	if !p.ttlLeft(frame) {
		p.c.Drops[DropTTLExceeded].Add(1)
		return VerdictDrop, Out{}, true
	}
	p.decTTL(frame)
	if int(pk.TotalLen) > eg.MTU {
		p.c.Drops[DropTooBig].Add(1)
		return VerdictDrop, Out{}, true
	}
	natICMPRewrite(frame, pk, true, d.Addr, true, d.Addr, natPort(d, isport))
	if proto == header.ProtocolTCP && p.sp != nil && p.sp.active.Load() {
		p.synProxyICMP(&conn, frame) // synproxy.go
	}
	encap.DR(frame, d.MAC, eg.MAC)
	return VerdictForward, Out{Off: off, Len: n, Slot: d.Slot}, true
}

func mapped4(a [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
}

// icmpValid checks an ICMP message's checksum.
func icmpValid(msg []byte) bool { return header.Checksum(msg, 0) == 0xffff }

// natICMPRewrite is ip_vs_nat_icmp on the frame: the outer destination
// (outerDst) or source becomes outer; the embedded source (innerSrc) or
// destination address becomes inner and its port port. The outer IPv4
// and the embedded IPv4 header checksums and the ICMP checksum are
// updated incrementally; the embedded TCP or UDP checksum is left as it
// is, as the kernel leaves it.
func natICMPRewrite(frame []byte, pk *header.Packet, outerDst bool, outer [4]byte, innerSrc bool, inner [4]byte, port uint16) {
	ip := header.IPv4(frame[pk.L3:])
	aoff := 12
	if outerDst {
		aoff = 16
	}
	ip.SetChecksum(header.ChecksumUpdateAddr(ip.Checksum(), [4]byte(ip[aoff:aoff+4]), outer))
	copy(ip[aoff:aoff+4], outer[:])

	msg := header.ICMPv4(frame[pk.L4:pk.End])
	ck := msg.Checksum()
	in := header.IPv4(frame[pk.L4+header.ICMPv4Len:])
	ioff, poff := 16, 2
	if innerSrc {
		ioff, poff = 12, 0
	}
	oldAddr := [4]byte(in[ioff : ioff+4])
	oldSum := in.Checksum()
	newSum := header.ChecksumUpdateAddr(oldSum, oldAddr, inner)
	l4 := in[in.HeaderLen():]
	oldPort := binary.BigEndian.Uint16(l4[poff:])
	copy(in[ioff:ioff+4], inner[:])
	in.SetChecksum(newSum)
	binary.BigEndian.PutUint16(l4[poff:], port)
	ck = header.ChecksumUpdateAddr(ck, oldAddr, inner)
	ck = header.ChecksumUpdate16(ck, oldSum, newSum)
	ck = header.ChecksumUpdate16(ck, oldPort, port)
	msg.SetChecksum(ck)
}
