package encap

import "github.com/afvs/afvs/internal/header"

// Time Exceeded codes and types not in the header package.
const (
	// icmpTTLExceeded is ICMP_EXC_TTL, the code of Time Exceeded for a TTL
	// that ran out in transit (RFC 792).
	icmpTTLExceeded = 0
	// icmpv6TimeExceeded is ICMPV6_TIME_EXCEED (RFC 4443 section 3.3); its
	// code 0, ICMPV6_EXC_HOPLIMIT, is a hop limit exceeded in transit.
	icmpv6TimeExceeded  = 3
	icmpv6ExcHopLimit   = 0
	icmpv6ErrorTypesEnd = 128 // ICMPv6 types below this are errors (RFC 4443 section 2.1)
)

// TimeExceeded builds in out the ICMP Time Exceeded message (type 11, code
// 0, "time to live exceeded in transit") that tells the sender of the IPv4
// frame in (parsed into p) that its packet died at the director, as
// decrement_ttl and ip_forward answer a packet whose TTL is 1 or less. It
// is built as FragNeeded builds its message: the frame goes back the way
// in came (srcMAC the director's interface, dstMAC the sender's or its
// gateway's, a VLAN tag repeated), from routerAddr, with the offending TOS
// bits under precedence "internetwork control", TTL 64, and a quote of as
// much of the packet as keeps the message within 576 bytes and returnMTU,
// the MTU of the interface it leaves by. It returns
// the frame's length, or 0 when it builds none: p not an IPv4 frame in in,
// out too small, a sender that must not receive ICMP errors, or a packet
// icmp_send would not answer (not the first fragment of its datagram, or
// itself an ICMP error: AnswerableV4).
func TimeExceeded(out []byte, in []byte, p *header.Packet, returnMTU int, srcMAC, dstMAC [6]byte, routerAddr [4]byte) int {
	if !AnswerableV4(in, p) {
		return 0
	}
	return icmpError4(out, in, p, header.ICMPv4TimeExceeded, icmpTTLExceeded, 0, returnMTU, srcMAC, dstMAC, routerAddr)
}

// AnswerableV4 reports whether icmp_send would answer the IPv4 frame in,
// parsed into p, with an ICMP error: only the first fragment of a
// datagram, and never an ICMP message that is itself an error (RFC 1122
// section 3.2.2), nor an ICMP message too short to show its type.
func AnswerableV4(in []byte, p *header.Packet) bool {
	if p == nil || p.IPv6 || p.L3 < 0 || p.L3+header.IPv4MinLen > len(in) {
		return false
	}
	if header.IPv4(in[p.L3:]).FragmentOffset() != 0 {
		return false
	}
	if p.Proto != header.ProtocolICMP {
		return true
	}
	if p.L4 < p.L3 || p.L4 >= len(in) || p.L4 >= p.End {
		return false
	}
	switch in[p.L4] {
	case 0, 8, 13, 14, 15, 16, 17, 18: // echo, timestamp, information, address mask: queries
		return true
	}
	// Errors, and types icmp_send does not know (it treats those as
	// errors too).
	return false
}

// TimeExceeded6 builds in out the ICMPv6 Time Exceeded message (type 3,
// code 0, "hop limit exceeded in transit") for the IPv6 frame in, parsed
// into p, as decrement_ttl and ip6_forward answer a packet whose hop limit
// is 1 or less. It is built as PacketTooBig builds its message (from
// routerAddr, hop limit 64, quoting as much of the packet as keeps the
// reply within 1280 bytes) and returns the frame's length, or 0 when it
// builds none: p not an IPv6 frame in in, out too small, an unspecified
// sender, or an ICMPv6 error, which icmpv6_send never answers.
func TimeExceeded6(out []byte, in []byte, p *header.Packet, srcMAC, dstMAC [6]byte, routerAddr [16]byte) int {
	if p == nil || !p.IPv6 {
		return 0
	}
	if p.Proto == header.ProtocolICMPv6 && (p.L4 < p.L3 || p.L4 >= len(in) || p.L4 >= p.End || in[p.L4] < icmpv6ErrorTypesEnd) {
		return 0
	}
	return icmpError6(out, in, p, icmpv6TimeExceeded, icmpv6ExcHopLimit, 0, srcMAC, dstMAC, routerAddr)
}
