package encap

import "github.com/afvs/afvs/internal/header"

// Limits of the Packet Too Big reply.
const (
	// MinMTU6 is the smallest MTU every IPv6 link must carry (RFC 8200
	// section 5). IPVS drops rather than tunnel over a smaller one
	// (__ip_vs_get_out_rt_v6), so it never advertises less.
	MinMTU6 = 1280
	// ptbHopLimit is the reply's hop limit: Linux's icmp6_send takes the
	// route's, which is 64 by default.
	ptbHopLimit = 64
	// maxQuote6 is how much of the offending packet an ICMPv6 error carries:
	// as much as keeps the message within the minimum MTU (RFC 4443 section
	// 2.4 (c)), the same bound icmp6_send uses.
	maxQuote6 = MinMTU6 - header.IPv6Len - header.ICMPv6Len
)

// NeedsPacketTooBig reports whether the IPv6 packet p, with overhead bytes of
// tunnel headers in front (0 for DR), would exceed egressMTU. IPv6 packets
// are never fragmented on the way (RFC 8200 section 5), so every such packet
// is refused with Packet Too Big, as ensure_mtu_is_adequate does for IPv6.
func NeedsPacketTooBig(p *header.Packet, egressMTU, overhead int) bool {
	return p != nil && p.IPv6 && int(p.TotalLen)+overhead > egressMTU
}

// PacketTooBig builds in out the ICMPv6 Packet Too Big message (type 2, code
// 0, RFC 4443 section 3.2) that tells the client of the IPv6 frame in (parsed
// into p) to send packets of at most mtu bytes: the egress MTU towards the
// real server minus the tunnel overhead. It is the IPv6 counterpart of
// FragNeeded and returns the length of the frame written, or 0 if it cannot
// build one: out too small, p not describing an IPv6 frame in in, mtu below
// MinMTU6 or above 65535, or an unspecified client address, which identifies
// no node to answer (icmp6_send checks the same; the parser already drops
// multicast sources). out must not overlap in.
//
// The frame goes back the way in came: srcMAC is the director's interface
// towards the client, dstMAC the client's (or gateway's) address, and a VLAN
// tag on in is repeated. routerAddr is the source address; icmp6_send uses
// the packet's destination when it is a local address, as the VIP is on the
// director, so pass p.DstMapped (the VIP) to behave like IPVS. Traffic class
// and flow label are 0 and the hop limit is 64. The message quotes the
// offending packet from its IPv6 header on, cut so that the reply fits in
// 1280 bytes, and carries the ICMPv6 checksum over the pseudo-header.
func PacketTooBig(out []byte, in []byte, p *header.Packet, mtu int, srcMAC, dstMAC [6]byte, routerAddr [16]byte) int {
	if mtu < MinMTU6 || mtu > 0xffff {
		return 0
	}
	return icmpError6(out, in, p, header.ICMPv6PacketTooBig, 0, uint32(mtu), srcMAC, dstMAC, routerAddr)
}

// icmpError6 builds in out the ICMPv6 error of type typ and code with the
// 4-byte field rest about the IPv6 frame in, as PacketTooBig describes
// (addresses, MACs, VLAN tag, hop limit and the quote), and returns the
// frame's length or 0.
func icmpError6(out []byte, in []byte, p *header.Packet, typ, code uint8, rest uint32, srcMAC, dstMAC [6]byte, routerAddr [16]byte) int {
	if p == nil || !p.IPv6 {
		return 0
	}
	l2 := p.L3
	if l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen || p.HasVLAN != (l2 != header.EthernetLen) {
		return 0
	}
	if p.End > len(in) || p.End-p.L3 < header.IPv6Len || p.SrcMapped == ([16]byte{}) {
		return 0
	}
	quote := min(p.End-p.L3, maxQuote6)
	icmpLen := header.ICMPv6Len + quote
	frameLen := l2 + header.IPv6Len + icmpLen
	if len(out) < frameLen {
		return 0
	}

	eth := header.Ethernet(out[:l2])
	eth.SetDstMAC(dstMAC)
	eth.SetSrcMAC(srcMAC)
	if p.HasVLAN {
		eth.SetEtherType(header.EtherTypeVLAN)
		eth.SetVLANTCI(p.VLANTCI)
		eth.SetInnerEtherType(header.EtherTypeIPv6)
	} else {
		eth.SetEtherType(header.EtherTypeIPv6)
	}
	writeIPv6(header.IPv6(out[l2:l2+header.IPv6Len]), 0, uint16(icmpLen), header.ProtocolICMPv6, ptbHopLimit, routerAddr, p.SrcMapped)

	icmpAt := l2 + header.IPv6Len
	m := header.ICMPv6(out[icmpAt:frameLen])
	m.SetType(typ)
	m.SetCode(code)
	m.SetMTU(rest)
	copy(m[header.ICMPv6Len:], in[p.L3:p.L3+quote])
	m.SetChecksum(0)
	m.SetChecksum(m.CalculateChecksum(routerAddr, p.SrcMapped))
	return frameLen
}
