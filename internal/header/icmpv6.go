package header

import "encoding/binary"

// ICMPv6 header layout: type, code, checksum and a 4-byte field whose
// meaning depends on the type (the MTU of Packet Too Big).
const ICMPv6Len = 8

// ICMPv6 types the director sends or must recognise (RFC 4443).
const (
	ICMPv6PacketTooBig uint8 = 2
)

// ICMPv6 is an ICMPv6 header. The slice must hold at least ICMPv6Len bytes;
// the checksum covers an IPv6 pseudo-header, the header and everything after
// it in the slice (RFC 4443 section 2.3).
type ICMPv6 []byte

// Type returns the message type.
func (h ICMPv6) Type() uint8 { return h[0] }

// SetType sets the message type.
func (h ICMPv6) SetType(v uint8) { h[0] = v }

// Code returns the message code.
func (h ICMPv6) Code() uint8 { return h[1] }

// SetCode sets the message code.
func (h ICMPv6) SetCode(v uint8) { h[1] = v }

// Checksum returns the checksum field.
func (h ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// SetChecksum sets the checksum field.
func (h ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(h[2:4], v) }

// MTU returns the MTU field of a Packet Too Big message.
func (h ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(h[4:8]) }

// SetMTU sets the MTU field of a Packet Too Big message.
func (h ICMPv6) SetMTU(v uint32) { binary.BigEndian.PutUint32(h[4:8], v) }

// CalculateChecksum returns the checksum the message should carry between
// src and dst, computed with the checksum field taken as zero.
func (h ICMPv6) CalculateChecksum(src, dst [16]byte) uint16 {
	ph := PseudoHeaderChecksumIPv6(ProtocolICMPv6, src, dst, uint32(len(h)))
	return ^ChecksumCombine(ph, ChecksumCombine(Checksum(h[:2], 0), Checksum(h[4:], 0)))
}
