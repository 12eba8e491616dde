package header

import "encoding/binary"

// IPv6 header layout and limits.
const (
	IPv6Len     = 40 // the fixed header; extension headers follow it
	IPv6Version = 6

	// MaxIPv6ExtHeaders bounds the extension headers Parse walks before the
	// upper-layer header. RFC 8200 section 4.1 lets a conforming sender put at
	// most four of the kinds Parse walks in front of it: hop-by-hop options,
	// destination options, routing, destination options again.
	MaxIPv6ExtHeaders = 4

	// MaxHopByHopOptions is how many options other than padding a hop-by-hop
	// header may carry: Linux's net.ipv6.max_hbh_opts_number default.
	MaxHopByHopOptions = 8
)

// IPv6 next-header values the director distinguishes (the IP protocol
// numbers it shares with IPv4 are with IPv4's).
const (
	ProtocolHopByHop uint8 = 0
	ProtocolIPv6     uint8 = 41 // IPv6 encapsulation, RFC 2473
	ProtocolRouting  uint8 = 43
	ProtocolFragment uint8 = 44
	ProtocolESP      uint8 = 50
	ProtocolAH       uint8 = 51
	ProtocolICMPv6   uint8 = 58
	ProtocolNoNext   uint8 = 59
	ProtocolDestOpts uint8 = 60
)

// Option types of hop-by-hop and destination options headers (RFC 8200
// section 4.2) that Parse treats specially.
const (
	IPv6OptPad1        uint8 = 0
	IPv6OptPadN        uint8 = 1
	IPv6OptRouterAlert uint8 = 5 // RFC 2711; its data is exactly 2 bytes
)

// IPv6 is an IPv6 fixed header. The slice must hold at least IPv6Len bytes.
type IPv6 []byte

// Version returns the IP version nibble.
func (h IPv6) Version() uint8 { return h[0] >> 4 }

// TrafficClass returns the traffic class (DSCP and ECN), IPv4's TOS byte.
func (h IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(h[0:2]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (h IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(h[0:4]) & 0x000fffff }

// SetVersionClassFlow sets version 6, the traffic class and the flow label
// (of which the low 20 bits are used).
func (h IPv6) SetVersionClassFlow(tc uint8, flow uint32) {
	binary.BigEndian.PutUint32(h[0:4], uint32(IPv6Version)<<28|uint32(tc)<<20|flow&0x000fffff)
}

// PayloadLength returns the length of everything after the fixed header:
// extension headers and the upper-layer packet.
func (h IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// SetPayloadLength sets the payload length.
func (h IPv6) SetPayloadLength(v uint16) { binary.BigEndian.PutUint16(h[4:6], v) }

// NextHeader returns the type of the header after the fixed one.
func (h IPv6) NextHeader() uint8 { return h[6] }

// SetNextHeader sets the type of the header after the fixed one.
func (h IPv6) SetNextHeader(v uint8) { h[6] = v }

// HopLimit returns the hop limit, IPv6's TTL.
func (h IPv6) HopLimit() uint8 { return h[7] }

// SetHopLimit sets the hop limit.
func (h IPv6) SetHopLimit(v uint8) { h[7] = v }

// Src returns the source address.
func (h IPv6) Src() [16]byte { return [16]byte(h[8:24]) }

// SetSrc sets the source address.
func (h IPv6) SetSrc(a [16]byte) { copy(h[8:24], a[:]) }

// Dst returns the destination address.
func (h IPv6) Dst() [16]byte { return [16]byte(h[24:40]) }

// SetDst sets the destination address.
func (h IPv6) SetDst(a [16]byte) { copy(h[24:40], a[:]) }
