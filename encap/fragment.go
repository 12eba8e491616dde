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
// An inner packet that is already a fragment is split into two fragments
// of the same datagram, at its offset, the second keeping its MF flag.
// ok is false, and buf is unchanged (second may have been written), when
// two fragments are not enough, when the inner header has options (which
// fragmentation would have to sort into copied and uncopied), when the
// inner packet has DF set, for an IPv6 packet (never fragmented on the
// way: see PacketTooBig), or when anything IPIP refuses.
func FragmentIPIP(buf []byte, off, n int, p *header.Packet, mtu int, outerSrc, outerDst [4]byte, srcMAC, dstMAC [6]byte, second []byte) (newOff, newN, secondN int, ok bool) {
	if len(second) < Overhead {
		return off, n, 0, false
	}
	// The second fragment is built behind Overhead bytes of headroom so
	// IPIP can put its outer header in front without copying.
	n1, n2, p1, p2, saved, ok := split(buf, off, n, p, mtu-Overhead, second[Overhead:])
	if !ok {
		return off, n, 0, false
	}
	o2, secondN, ok := IPIP(second, Overhead, n2, &p2, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok || o2 != 0 {
		copy(buf[off+p.L3:], saved[:]) // leave buf as it was
		return off, n, 0, false
	}
	newOff, newN, ok = IPIP(buf, off, n1, &p1, outerSrc, outerDst, srcMAC, dstMAC)
	if !ok {
		copy(buf[off+p.L3:], saved[:])
		return off, n, 0, false
	}
	return newOff, newN, secondN, true
}

// FragmentDR is DR for a packet without DF that exceeds the egress mtu:
// it splits the packet into two IPv4 fragments, the first in place (its
// frame is buf[off:off+newN]), the second as a whole frame in second
// (secondN bytes), and gives both the real server's MAC, as IPVS's DR
// transmit does when the kernel fragments on output. ok is false, and buf
// is unchanged, in the cases FragmentIPIP lists.
func FragmentDR(buf []byte, off, n int, p *header.Packet, mtu int, srcMAC, dstMAC [6]byte, second []byte) (newN, secondN int, ok bool) {
	n1, n2, _, _, _, ok := split(buf, off, n, p, mtu, second)
	if !ok {
		return n, 0, false
	}
	DR(buf[off:off+n1], dstMAC, srcMAC)
	DR(second[:n2], dstMAC, srcMAC)
	return n1, n2, true
}

// split cuts the IPv4 packet of frame buf[off:off+n] (parsed as p) into
// two fragments of at most ipMTU bytes each. The first stays in buf, its
// header rewritten and its frame n1 bytes long; the second, with a copy of
// the frame's L2 header, is written to dst[:n2]. p1 and p2 describe the
// two frames; saved is buf's IP header as it was, for a caller that must
// undo the split. Nothing is written unless ok.
func split(buf []byte, off, n int, p *header.Packet, ipMTU int, dst []byte) (n1, n2 int, p1, p2 header.Packet, saved [header.IPv4MinLen]byte, ok bool) {
	if p == nil || p.IPv6 || p.DF || off < 0 || n < 0 || off > len(buf) || n > len(buf)-off || p.End > n {
		return
	}
	l2 := p.L3
	inner := int(p.TotalLen)
	if (l2 != header.EthernetLen && l2 != header.EthernetLen+header.VLANTagLen) || inner < header.IPv4MinLen || p.End != l2+inner {
		return
	}
	ip := header.IPv4(buf[off+l2 : off+l2+inner])
	hl := ip.HeaderLen()
	if hl != header.IPv4MinLen {
		return
	}
	// A packet that is itself a fragment is split as a router would: the
	// pieces start at its offset, and the last keeps its MF flag.
	ff := ip.FlagsFragment()
	base, lastMF := ff&header.IPv4FragOffsetMask, ff&header.IPv4FlagMF
	// Payload per fragment: what fits under the MTU, in 8-byte units for
	// every fragment but the last.
	room := ipMTU - hl
	first := room &^ 7
	rest := inner - hl - first
	if first <= 0 || rest <= 0 || rest > room || int(base)+first/8 > int(header.IPv4FragOffsetMask) {
		return
	}
	n2 = l2 + hl + rest
	if len(dst) < n2 {
		return
	}
	f2 := dst[:n2]
	copy(f2[:l2+hl], buf[off:off+l2+hl])
	copy(f2[l2+hl:], buf[off+l2+hl+first:off+l2+inner])
	setFragment(header.IPv4(f2[l2:]), hl+rest, lastMF|(base+uint16(first/8)))
	p2 = *p
	p2.TotalLen, p2.End = uint16(hl+rest), n2
	// The first fragment, in place: the same header with MF set, cut
	// after its share of the payload.
	saved = [header.IPv4MinLen]byte(ip[:header.IPv4MinLen])
	setFragment(ip, hl+first, header.IPv4FlagMF|base)
	p1 = *p
	p1.TotalLen, p1.End = uint16(hl+first), l2+hl+first
	return l2 + hl + first, n2, p1, p2, saved, true
}

// setFragment gives an inner header its fragment's total length, its
// flags/offset word (offset in 8-byte units) and a fresh checksum.
func setFragment(h header.IPv4, total int, flagsOffset uint16) {
	h.SetTotalLength(uint16(total))
	h.SetFlagsFragment(flagsOffset)
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())
}
