package encap

import "github.com/afvs/afvs/internal/header"

// Fragment4in6 is IP4IP6 for an IPv4 packet without DF too big to tunnel
// whole to an IPv6 real server: one that exceeds mtu, the egress MTU, once
// the 40-byte outer IPv6 header is added. As FragmentIPIP does for IPIP,
// it splits the inner IPv4 packet into two IPv4 fragments and tunnels
// each in its own IPv6 packet: the first in place (its frame is newOff,
// newN), the second into second, a whole frame of secondN bytes. The real
// server decapsulates each and reassembles the inner packet. The outer
// IPv6 packets are never fragmented (IPv6 routers do not fragment, and an
// XDP decapsulator could not reassemble them). ok is false, and buf is
// unchanged, in the cases FragmentIPIP lists, and for anything IP4IP6
// refuses.
func Fragment4in6(buf []byte, off, n int, p *header.Packet, mtu int, outerSrc, outerDst [16]byte, srcMAC, dstMAC [6]byte, second []byte) (newOff, newN, secondN int, ok bool) {
	if len(second) < Overhead6 {
		return off, n, 0, false
	}
	n1, n2, p1, p2, saved, ok := split(buf, off, n, p, mtu-Overhead6, second[Overhead6:])
	if !ok {
		return off, n, 0, false
	}
	o2, secondN, ok := IP4IP6(second, Overhead6, n2, &p2, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok || o2 != 0 {
		copy(buf[off+p.L3:], saved[:])
		return off, n, 0, false
	}
	newOff, newN, ok = IP4IP6(buf, off, n1, &p1, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok {
		copy(buf[off+p.L3:], saved[:])
		return off, n, 0, false
	}
	return newOff, newN, secondN, true
}
