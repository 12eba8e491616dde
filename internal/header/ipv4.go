package header

import "encoding/binary"

// IPv4 header layout and limits.
const (
	IPv4MinLen  = 20 // header without options (IHL 5)
	IPv4MaxLen  = 60 // IHL 15
	IPv4Version = 4
)

// IP protocol numbers the director uses.
const (
	ProtocolICMP uint8 = 1
	ProtocolIPIP uint8 = 4 // IPv4 in IPv4, RFC 2003
	ProtocolTCP  uint8 = 6
	ProtocolUDP  uint8 = 17
)

// IPv4 option types with no length byte (RFC 791).
const (
	IPv4OptEOL uint8 = 0 // End of Options List
	IPv4OptNOP uint8 = 1 // No Operation
)

// Flag bits in the flags/fragment-offset word.
const (
	IPv4FlagDF         uint16 = 0x4000 // don't fragment
	IPv4FlagMF         uint16 = 0x2000 // more fragments
	IPv4FragOffsetMask uint16 = 0x1fff // offset in 8-byte units
)

// IPv4 is an IPv4 header. The slice must hold at least IPv4MinLen bytes; the
// options and the checksum cover HeaderLen bytes.
type IPv4 []byte

// Version returns the IP version nibble.
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen returns the header length in bytes (IHL * 4).
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// SetVersionIHL sets version 4 and the header length in bytes, which must be
// a multiple of four between IPv4MinLen and IPv4MaxLen.
func (h IPv4) SetVersionIHL(headerLen int) { h[0] = IPv4Version<<4 | uint8(headerLen/4)&0x0f }

// TOS returns the type-of-service byte (DSCP and ECN).
func (h IPv4) TOS() uint8 { return h[1] }

// SetTOS sets the type-of-service byte.
func (h IPv4) SetTOS(v uint8) { h[1] = v }

// TotalLength returns the length of header and payload in bytes.
func (h IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// SetTotalLength sets the total length.
func (h IPv4) SetTotalLength(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// ID returns the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// SetID sets the identification field.
func (h IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(h[4:6], v) }

// FlagsFragment returns the raw flags/fragment-offset word.
func (h IPv4) FlagsFragment() uint16 { return binary.BigEndian.Uint16(h[6:8]) }

// SetFlagsFragment sets the raw flags/fragment-offset word.
func (h IPv4) SetFlagsFragment(v uint16) { binary.BigEndian.PutUint16(h[6:8], v) }

// DF reports whether the don't-fragment flag is set.
func (h IPv4) DF() bool { return h.FlagsFragment()&IPv4FlagDF != 0 }

// MF reports whether the more-fragments flag is set.
func (h IPv4) MF() bool { return h.FlagsFragment()&IPv4FlagMF != 0 }

// FragmentOffset returns the fragment offset in bytes.
func (h IPv4) FragmentOffset() int { return int(h.FlagsFragment()&IPv4FragOffsetMask) * 8 }

// TTL returns the time to live.
func (h IPv4) TTL() uint8 { return h[8] }

// SetTTL sets the time to live.
func (h IPv4) SetTTL(v uint8) { h[8] = v }

// Protocol returns the payload's protocol number.
func (h IPv4) Protocol() uint8 { return h[9] }

// SetProtocol sets the payload's protocol number.
func (h IPv4) SetProtocol(v uint8) { h[9] = v }

// Checksum returns the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[10:12]) }

// SetChecksum sets the header checksum field.
func (h IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[10:12], v) }

// Src returns the source address.
func (h IPv4) Src() [4]byte { return [4]byte(h[12:16]) }

// SetSrc sets the source address.
func (h IPv4) SetSrc(a [4]byte) { copy(h[12:16], a[:]) }

// Dst returns the destination address.
func (h IPv4) Dst() [4]byte { return [4]byte(h[16:20]) }

// SetDst sets the destination address.
func (h IPv4) SetDst(a [4]byte) { copy(h[16:20], a[:]) }

// CalculateChecksum returns the checksum the header should carry, computed
// with the checksum field taken as zero.
func (h IPv4) CalculateChecksum() uint16 {
	n := h.HeaderLen()
	// Sum around the checksum field instead of zeroing it, so that a read-only
	// caller does not have to copy the header.
	return ^ChecksumCombine(Checksum(h[:10], 0), Checksum(h[12:n], 0))
}

// IsChecksumValid reports whether the header sums to 0xffff, which is how a
// receiver verifies it (RFC 1071) without recomputing the field.
func (h IPv4) IsChecksumValid() bool { return Checksum(h[:h.HeaderLen()], 0) == 0xffff }

// Payload returns the bytes after the header up to the total length. The slice
// must hold TotalLength bytes.
func (h IPv4) Payload() []byte { return h[h.HeaderLen():h.TotalLength()] }
