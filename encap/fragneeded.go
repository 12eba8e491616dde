package encap

import "github.com/afvs/afvs/internal/header"

// Limits of the fragmentation-needed reply.
const (
	// minHopMTU is the smallest MTU every IPv4 link must carry (RFC 791);
	// IPVS drops rather than advertise less (ensure_mtu_is_adequate).
	minHopMTU = 68
	// maxError4 is the most an ICMP error's IP datagram may carry:
	// icmp_send quotes as much of the offending datagram as keeps its
	// message within 576 bytes, or within the route's MTU back to the
	// sender when that is smaller (RFC 1812 section 4.3.2.3).
	maxError4 = 576
	// icmpTOSPrecedence is IPTOS_PREC_INTERNETCONTROL, which Linux's
	// icmp_send ORs into the TOS bits of the offending packet.
	icmpTOSPrecedence = 0xc0
	icmpTOSMask       = 0x1e // IPTOS_TOS_MASK
)

// NeedsFrag reports whether the packet p, once tunnelled, would exceed
// egressMTU (the egress interface's L3 MTU) while its DF flag forbids
// fragmenting it. A too-big packet without DF is not reported: IPVS would
// fragment the outer packet, and the caller decides what to do instead. It
// is false for an IPv6 packet, which NeedsPacketTooBig answers for.
func NeedsFrag(p *header.Packet, egressMTU int) bool {
	return p != nil && !p.IPv6 && p.DF && int(p.TotalLen)+Overhead > egressMTU
}

// FragNeeded builds in out the ICMP destination-unreachable, fragmentation-
// needed message (type 3, code 4, RFC 1191) that tells the client of frame in
// (parsed into p) to send packets of at most mtu-20 bytes, mtu being the
// egress interface's MTU towards the real server. It returns the length of
// the frame written, or 0 if it cannot build one: out too small, p not
// describing an IPv4 frame in (PacketTooBig answers IPv6), a hop MTU below
// 68 or above 65535, or a client address that
// must not receive ICMP errors (RFC 1122 3.2.2: zero, loopback, multicast,
// broadcast). out must not overlap in.
//
// The frame goes back the way in came: srcMAC is the director's interface
// towards the client, dstMAC the client's (or gateway's) address, usually in's
// source MAC, and a VLAN tag on in is repeated. routerAddr is the source
// address. IPVS calls icmp_send while the packet still carries its input
// route, which is local because the VIP is configured on the director, so
// Linux uses the packet's destination, the VIP (p.Dst); pass that to behave
// like IPVS.
//
// The IPv4 header follows icmp_send in TOS (the offending TOS bits with
// precedence "internetwork control") and TTL 64. Unlike Linux it sets DF with
// ID 0: the message fits the MTU back to the sender (below), so it never
// needs fragmenting there, and an atomic datagram needs no unique ID (RFC
// 6864). The quote is what icmp_send quotes: the offending datagram from its
// IP header on, cut so that the whole message stays within 576 bytes, or
// within returnMTU, the MTU of the interface the message leaves by (the one
// in came in on), when that is smaller; a returnMTU that leaves no room for
// the quoted IP header builds nothing, as icmp_send sends nothing then.
func FragNeeded(out []byte, in []byte, p *header.Packet, mtu, returnMTU int, srcMAC, dstMAC [6]byte, routerAddr [4]byte) int {
	hopMTU := mtu - Overhead
	if hopMTU < minHopMTU || hopMTU > 0xffff {
		return 0
	}
	return icmpError4(out, in, p, header.ICMPv4DestUnreachable, header.ICMPv4FragNeeded, uint32(hopMTU), returnMTU, srcMAC, dstMAC, routerAddr)
}

// icmpError4 builds in out the ICMP error of type typ and code with the
// rest-of-header word rest about the IPv4 frame in, as FragNeeded describes
// (addresses, MACs, VLAN tag, TOS, TTL, DF and the quote within returnMTU),
// and returns the frame's length or 0.
func icmpError4(out []byte, in []byte, p *header.Packet, typ, code uint8, rest uint32, returnMTU int, srcMAC, dstMAC [6]byte, routerAddr [4]byte) int {
	if p == nil || p.IPv6 {
		return 0
	}
	l2 := p.L3
	if l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen {
		return 0
	}
	if p.HasVLAN != (l2 == header.EthernetLen+header.VLANTagLen) {
		return 0
	}
	ihl := p.L4 - p.L3
	if ihl < header.IPv4MinLen || ihl > header.IPv4MaxLen || p.End > len(in) || p.End < p.L4 {
		return 0
	}
	if !unicast(p.Src) {
		return 0
	}
	// icmp_send's room: the message's IP datagram within 576 bytes and the
	// route's MTU, less the reply's own IP and ICMP headers.
	room := min(maxError4, returnMTU) - header.IPv4MinLen - header.ICMPv4Len
	if room <= header.IPv4MinLen || room < ihl {
		return 0
	}
	quote := min(p.End-p.L3, room)
	ipLen := header.IPv4MinLen + header.ICMPv4Len + quote
	frameLen := l2 + ipLen
	if len(out) < frameLen {
		return 0
	}

	eth := header.Ethernet(out[:l2])
	eth.SetDstMAC(dstMAC)
	eth.SetSrcMAC(srcMAC)
	if p.HasVLAN {
		eth.SetEtherType(header.EtherTypeVLAN)
		eth.SetVLANTCI(p.VLANTCI)
		eth.SetInnerEtherType(header.EtherTypeIPv4)
	} else {
		eth.SetEtherType(header.EtherTypeIPv4)
	}

	h := header.IPv4(out[l2 : l2+header.IPv4MinLen])
	h.SetVersionIHL(header.IPv4MinLen)
	h.SetTOS(p.TOS&icmpTOSMask | icmpTOSPrecedence)
	h.SetTotalLength(uint16(ipLen))
	h.SetID(0)
	h.SetFlagsFragment(header.IPv4FlagDF)
	h.SetTTL(OuterTTL)
	h.SetProtocol(header.ProtocolICMP)
	h.SetSrc(routerAddr)
	h.SetDst(p.Src)
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())

	icmpAt := l2 + header.IPv4MinLen
	m := header.ICMPv4(out[icmpAt:frameLen])
	m.SetType(typ)
	m.SetCode(code)
	m.SetRest(rest)
	copy(m[header.ICMPv4Len:], in[p.L3:p.L3+quote])
	m.SetChecksum(0)
	m.SetChecksum(m.CalculateChecksum())
	return frameLen
}

// unicast reports whether a may be the destination of an ICMP error.
func unicast(a [4]byte) bool {
	switch {
	case a[0] == 0, a[0] == 127, a[0] >= 224:
		return false
	}
	return true
}
