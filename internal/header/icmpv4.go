package header

import "encoding/binary"

// ICMPv4 header layout.
const ICMPv4Len = 8 // type, code, checksum and the 4-byte rest-of-header

// ICMPv4 types and codes the director sends.
const (
	ICMPv4DestUnreachable uint8 = 3
	ICMPv4FragNeeded      uint8 = 4 // code under ICMPv4DestUnreachable, RFC 1191
)

// ICMPv4 is an ICMPv4 header. The slice must hold at least ICMPv4Len bytes;
// Checksum covers the header and everything after it in the slice.
type ICMPv4 []byte

// Type returns the message type.
func (h ICMPv4) Type() uint8 { return h[0] }

// SetType sets the message type.
func (h ICMPv4) SetType(v uint8) { h[0] = v }

// Code returns the message code.
func (h ICMPv4) Code() uint8 { return h[1] }

// SetCode sets the message code.
func (h ICMPv4) SetCode(v uint8) { h[1] = v }

// Checksum returns the checksum field.
func (h ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// SetChecksum sets the checksum field.
func (h ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// Rest returns the 4-byte rest-of-header word.
func (h ICMPv4) Rest() uint32 { return binary.BigEndian.Uint32(h[4:8]) }

// SetRest sets the 4-byte rest-of-header word.
func (h ICMPv4) SetRest(v uint32) { binary.BigEndian.PutUint32(h[4:8], v) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191:
// the low 16 bits of the rest-of-header word; the high 16 are unused, zero).
func (h ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(h[6:8]) }

// SetMTU sets the next-hop MTU and clears the unused half-word.
func (h ICMPv4) SetMTU(v uint16) {
	binary.BigEndian.PutUint16(h[4:6], 0)
	binary.BigEndian.PutUint16(h[6:8], v)
}

// CalculateChecksum returns the checksum the message should carry, computed
// over the whole slice with the checksum field taken as zero.
func (h ICMPv4) CalculateChecksum() uint16 {
	return ^ChecksumCombine(Checksum(h[:2], 0), Checksum(h[4:], 0))
}
