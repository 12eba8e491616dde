package encap

import "github.com/afvs/afvs/internal/header"

// FragmentIPIP is IPIP for a packet too big to tunnel whole: an inner
// packet without DF that exceeds mtu once the outer header is added. As a
// router may, it splits the inner packet into two IPv4 fragments (RFC 791
// section 3.2) and tunnels each: the first in place, as IPIP would (its
// frame is returned as newOff, newN), the second into second, which gets a
// whole frame of its own (secondN bytes). The real server decapsulates
// each and reassembles the inner packet, as it would after any router.
// IPVS sends such a packet whole and lets the kernel fragment the outer
// packet instead; that needs the real server to reassemble before it
// decapsulates, which an XDP decapsulator cannot.
//
// ok is false, and buf is unchanged (second may have been written), when two fragments are
// not enough, when the inner header has options (which fragmentation
// would have to sort into copied and uncopied), when the inner packet has
// DF set or is already a fragment, or when anything IPIP refuses.
func FragmentIPIP(buf []byte, off, n int, p *header.Packet, mtu int, outerSrc, outerDst [4]byte, srcMAC, dstMAC [6]byte, second []byte) (newOff, newN, secondN int, ok bool) {
	if p == nil || p.DF || off < 0 || n < 0 || off > len(buf) || n > len(buf)-off || p.End > n {
		return off, n, 0, false
	}
	l2 := p.L3
	inner := int(p.TotalLen)
	if (l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen) || inner < header.IPv4MinLen || p.End != l2+inner {
		return off, n, 0, false
	}
	ip := header.IPv4(buf[off+l2 : off+l2+inner])
	hl := ip.HeaderLen()
	if hl != header.IPv4MinLen || ip.FlagsFragment()&(header.IPv4FlagMF|header.IPv4FragOffsetMask) != 0 {
		return off, n, 0, false
	}
	// Payload per fragment: what fits under the MTU, in 8-byte units for
	// every fragment but the last.
	room := mtu - Overhead - hl
	first := room &^ 7
	rest := inner - hl - first
	if first <= 0 || rest <= 0 || rest > room {
		return off, n, 0, false
	}
	// The second fragment, built behind Overhead bytes of headroom so
	// IPIP can put its outer header in front without copying.
	n2 := l2 + hl + rest
	if len(second) < Overhead+n2 {
		return off, n, 0, false
	}
	f2 := second[Overhead : Overhead+n2]
	copy(f2[:l2+hl], buf[off:off+l2+hl])
	copy(f2[l2+hl:], buf[off+l2+hl+first:off+l2+inner])
	setFragment(header.IPv4(f2[l2:]), hl+rest, uint16(first/8))
	p2 := *p
	p2.TotalLen, p2.End = uint16(hl+rest), n2
	o2, secondN, ok := IPIP(second, Overhead, n2, &p2, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok || o2 != 0 {
		return off, n, 0, false
	}
	// The first fragment, in place: the same header with MF set, cut
	// after its share of the payload.
	p1 := *p
	p1.TotalLen, p1.End = uint16(hl+first), l2+hl+first
	hdr := [header.IPv4MinLen]byte(ip[:header.IPv4MinLen])
	setFragment(ip, hl+first, header.IPv4FlagMF)
	newOff, newN, ok = IPIP(buf, off, l2+hl+first, &p1, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok {
		copy(ip, hdr[:]) // leave buf as it was
		return off, n, 0, false
	}
	return newOff, newN, secondN, true
}

// setFragment gives an inner header its fragment's total length, its
// flags/offset word (offset in 8-byte units) and a fresh checksum.
func setFragment(h header.IPv4, total int, flagsOffset uint16) {
	h.SetTotalLength(uint16(total))
	h.SetFlagsFragment(flagsOffset)
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())
}
