package header

import "encoding/binary"

// Checksum returns the folded 16-bit one's-complement sum of b added to
// initial, without the final complement, so that sums over several pieces can
// be chained. An odd trailing byte is padded with zero, as RFC 1071 says. The
// value to store in a header is ^Checksum(...).
func Checksum(b []byte, initial uint16) uint16 {
	sum := uint64(initial)
	// Eight bytes per step: the carries accumulate in the upper bits of the
	// 64-bit sum and are folded once at the end. Summing 32-bit words into a
	// 64-bit accumulator cannot overflow for any frame size we handle.
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v >> 32
		sum += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return fold(sum)
}

// headerChecksumValid reports whether an IPv4 header h (its whole length,
// options included) sums to 0xffff. The common 20-byte header is summed as
// two 8-byte words and one 4-byte word, without Checksum's loop.
func headerChecksumValid(h []byte) bool {
	if len(h) != IPv4MinLen {
		return Checksum(h, 0) == 0xffff
	}
	a := binary.BigEndian.Uint64(h[0:8])
	b := binary.BigEndian.Uint64(h[8:16])
	c := uint64(binary.BigEndian.Uint32(h[16:20]))
	return fold(a>>32+a&0xffffffff+b>>32+b&0xffffffff+c) == 0xffff
}

func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return uint16(sum)
}

// ChecksumCombine adds two partial sums in one's-complement arithmetic.
func ChecksumCombine(a, b uint16) uint16 { return fold(uint64(a) + uint64(b)) }

// PseudoHeaderChecksum returns the partial sum of the IPv4 pseudo-header that
// TCP and UDP checksums cover: source, destination, protocol and L4 length.
func PseudoHeaderChecksum(proto uint8, src, dst [4]byte, l4Len uint16) uint16 {
	sum := uint64(binary.BigEndian.Uint16(src[0:2])) + uint64(binary.BigEndian.Uint16(src[2:4])) +
		uint64(binary.BigEndian.Uint16(dst[0:2])) + uint64(binary.BigEndian.Uint16(dst[2:4])) +
		uint64(proto) + uint64(l4Len)
	return fold(sum)
}

// ChecksumUpdate16 returns the new value of a checksum field (as stored in the
// header, i.e. already complemented) after a 16-bit word covered by it changes
// from old to new. It is RFC 1624 equation 3, HC' = ~(~HC + ~m + m'), which
// unlike equation 2 never yields 0x0000 from a non-zero sum (the -0 problem of
// RFC 1141).
func ChecksumUpdate16(check, old, new uint16) uint16 {
	return ^fold(uint64(^check) + uint64(^old) + uint64(new))
}

// ChecksumUpdateAddr is ChecksumUpdate16 for a 4-byte field such as an IPv4
// address, applied as two 16-bit words.
func ChecksumUpdateAddr(check uint16, old, new [4]byte) uint16 {
	sum := uint64(^check) +
		uint64(^binary.BigEndian.Uint16(old[0:2])) + uint64(^binary.BigEndian.Uint16(old[2:4])) +
		uint64(binary.BigEndian.Uint16(new[0:2])) + uint64(binary.BigEndian.Uint16(new[2:4]))
	return ^fold(sum)
}

// PseudoHeaderChecksumIPv6 returns the partial sum of the IPv6 pseudo-header
// (RFC 8200 section 8.1) that TCP, UDP and ICMPv6 checksums cover: source,
// destination, upper-layer length and next header.
func PseudoHeaderChecksumIPv6(proto uint8, src, dst [16]byte, l4Len uint32) uint16 {
	var sum uint64
	for i := 0; i < 16; i += 2 {
		sum += uint64(binary.BigEndian.Uint16(src[i:])) + uint64(binary.BigEndian.Uint16(dst[i:]))
	}
	sum += uint64(l4Len>>16) + uint64(l4Len&0xffff) + uint64(proto)
	return fold(sum)
}
