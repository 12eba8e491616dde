package encap

import "github.com/afvs/afvs/internal/header"

// Overhead6 is what an outer IPv6 header adds: IPv6-in-IPv6 (RFC 2473) and
// IPv4-in-IPv6 put a 40-byte header without extension headers in front.
const Overhead6 = header.IPv6Len

// IP6IP6 encapsulates, for VS/TUN of an IPv6 service to an IPv6 real server,
// the IPv6 frame buf[off:off+n] described by p in an outer IPv6 header from
// outerSrc to outerDst (next header 41), as ip_vs_tunnel_xmit_v6 does. It
// works like IPIP: with at least 40 bytes of headroom only the Ethernet
// header (and VLAN tag) moves; otherwise the packet shifts right. ok is false,
// and buf unchanged, when p is not an IPv6 frame parsed from buf[off:off+n],
// when it does not fit, or when the payload would exceed 65535 bytes.
//
// The outer header carries what ip_vs_prepare_tunneled_skb takes from the
// inner one: the traffic class and the hop limit; its flow label is 0.
func IP6IP6(buf []byte, off, n int, p *header.Packet, outerSrc, outerDst [16]byte, srcMAC, dstMAC [6]byte) (newOff, newN int, ok bool) {
	if p == nil || !p.IPv6 {
		return off, n, false
	}
	newOff, ipAt, ok := makeRoom(buf, off, n, p, Overhead6, header.EtherTypeIPv6, srcMAC, dstMAC)
	if !ok {
		return off, n, false
	}
	inner := int(p.TotalLen)
	hop := header.IPv6(buf[ipAt : ipAt+inner]).HopLimit()
	writeIPv6(buf[ipAt-Overhead6:ipAt], p.TOS, uint16(inner), header.ProtocolIPv6, hop, outerSrc, outerDst)
	return newOff, ipAt - newOff + inner, true
}

// IP4IP6 encapsulates an IPv4 frame for VS/TUN to an IPv6 real server (a
// mixed-family tunnel dest of an IPv4 service): the outer IPv6 header's next
// header is 4 (IPIP), its traffic class the inner TOS and its hop limit the
// inner TTL, as ip_vs_prepare_tunneled_skb sets them. Otherwise as IP6IP6.
func IP4IP6(buf []byte, off, n int, p *header.Packet, outerSrc, outerDst [16]byte, srcMAC, dstMAC [6]byte) (newOff, newN int, ok bool) {
	if p == nil || p.IPv6 {
		return off, n, false
	}
	newOff, ipAt, ok := makeRoom(buf, off, n, p, Overhead6, header.EtherTypeIPv6, srcMAC, dstMAC)
	if !ok {
		return off, n, false
	}
	inner := int(p.TotalLen)
	ttl := header.IPv4(buf[ipAt : ipAt+inner]).TTL()
	writeIPv6(buf[ipAt-Overhead6:ipAt], p.TOS, uint16(inner), header.ProtocolIPIP, ttl, outerSrc, outerDst)
	return newOff, ipAt - newOff + inner, true
}

// IP6IP4 encapsulates an IPv6 frame for VS/TUN to an IPv4 real server (a
// mixed-family tunnel dest of an IPv6 service) in an outer IPv4 header with
// protocol 41 (RFC 4213). As in ip_vs_tunnel_xmit for an IPv6 packet, TOS is
// the inner traffic class, TTL the inner hop limit, and DF is clear: the
// inner packet cannot say whether it may be fragmented, so the outer one may
// be. Its identification must then be unique per source and destination for
// the reassembly time (RFC 6864); the caller passes id from a counter (Linux
// uses ip_select_ident). Otherwise as IPIP.
func IP6IP4(buf []byte, off, n int, p *header.Packet, outerSrc, outerDst [4]byte, id uint16, srcMAC, dstMAC [6]byte) (newOff, newN int, ok bool) {
	if p == nil || !p.IPv6 {
		return off, n, false
	}
	newOff, ipAt, ok := makeRoom(buf, off, n, p, Overhead, header.EtherTypeIPv4, srcMAC, dstMAC)
	if !ok {
		return off, n, false
	}
	inner := int(p.TotalLen)
	hop := header.IPv6(buf[ipAt : ipAt+inner]).HopLimit()
	h := header.IPv4(buf[ipAt-Overhead : ipAt])
	h.SetVersionIHL(header.IPv4MinLen)
	h.SetTOS(p.TOS)
	h.SetTotalLength(uint16(inner + Overhead))
	h.SetID(id)
	h.SetFlagsFragment(0)
	h.SetTTL(hop)
	h.SetProtocol(header.ProtocolIPv6)
	h.SetSrc(outerSrc)
	h.SetDst(outerDst)
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())
	return newOff, ipAt - newOff + inner, true
}

// makeRoom validates buf[off:off+n] against p, makes overhead bytes of room
// in front of the IP packet as IPIP does, writes the Ethernet header with
// the given MACs and the ethertype of the new outer header (after any VLAN
// tag, which is kept), and returns where the new frame starts and where the
// inner IP packet now is. It changes nothing when it returns false.
func makeRoom(buf []byte, off, n int, p *header.Packet, overhead int, etherType uint16, srcMAC, dstMAC [6]byte) (newOff, ipAt int, ok bool) {
	if off < 0 || n < 0 || off > len(buf) || n > len(buf)-off {
		return 0, 0, false
	}
	l2 := p.L3
	if l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen || p.HasVLAN != (l2 != header.EthernetLen) {
		return 0, 0, false
	}
	minIP := header.IPv4MinLen
	if p.IPv6 {
		minIP = header.IPv6Len
	}
	inner := int(p.TotalLen)
	// The outer length field: IPv6's payload length counts the inner
	// packet, IPv4's total length the outer header too.
	maxInner := 0xffff
	if overhead == Overhead {
		maxInner -= Overhead
	}
	if inner < minIP || p.End != l2+inner || p.End > n || inner > maxInner {
		return 0, 0, false
	}
	newOff = max(off-overhead, 0)
	ipAt = newOff + l2 + overhead
	if ipAt+inner > len(buf) {
		return 0, 0, false
	}
	src := off + l2
	if ipAt != src {
		copy(buf[ipAt:ipAt+inner], buf[src:src+inner])
	}
	copy(buf[newOff:newOff+l2], buf[off:off+l2])
	eth := header.Ethernet(buf[newOff : newOff+l2])
	eth.SetDstMAC(dstMAC)
	eth.SetSrcMAC(srcMAC)
	if p.HasVLAN {
		eth.SetInnerEtherType(etherType)
	} else {
		eth.SetEtherType(etherType)
	}
	return newOff, ipAt, true
}

// writeIPv6 writes an IPv6 header without extension headers into h.
func writeIPv6(h header.IPv6, tc uint8, payload uint16, next, hop uint8, src, dst [16]byte) {
	h.SetVersionClassFlow(tc, 0)
	h.SetPayloadLength(payload)
	h.SetNextHeader(next)
	h.SetHopLimit(hop)
	h.SetSrc(src)
	h.SetDst(dst)
}
