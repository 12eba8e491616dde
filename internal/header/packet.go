package header

import "encoding/binary"

// Packet is what Parse learns about a frame. Offsets are from the start of the
// frame passed to Parse, so they stay valid if the frame is later viewed
// through another slice of the same memory at the same start. A Packet is a
// plain value: a worker keeps one per frame of its batch and reuses it.
//
// For an IPv6 frame IPv6 is set, Src and Dst are zero, SrcMapped and DstMapped
// hold the addresses themselves, TOS is the traffic class, DF is always set
// (nothing fragments IPv6 on the way, RFC 8200 section 5) and ID is zero.
type Packet struct {
	L3      int // offset of the IP header: 14, or 18 with an 802.1Q tag
	L4      int // offset of the TCP, UDP or ICMPv6 header, after any IPv6 extension headers
	Payload int // offset of the L4 payload
	End     int // L3 + TotalLen; bytes from End on are Ethernet padding

	HasVLAN bool
	VLANTCI uint16 // priority, DEI and VLAN ID, when HasVLAN

	IPv6                 bool     // the frame is IPv6 (ethertype 0x86DD)
	Src, Dst             [4]byte  // IPv4 only
	SrcMapped, DstMapped [16]byte // the connection table's key form: ::ffff:a.b.c.d for IPv4 (RFC 4291 2.5.5.2), the address for IPv6

	Proto            uint8  // IPv4 protocol; for IPv6 the upper-layer next header
	SrcPort, DstPort uint16 // host order; zero for ICMPv6
	TCPFlags         uint8  // zero for UDP
	TOS              uint8
	DF               bool
	ID               uint16
	TotalLen         uint16 // IPv4 total length: header, options and L4; IPv6: 40 + payload length
}

// IPv4 returns the IPv4 header and payload of frame, without Ethernet padding.
// It is valid only for an IPv4 frame p was parsed from with OK.
func (p *Packet) IPv4(frame []byte) IPv4 { return IPv4(frame[p.L3:p.End]) }

// IPv6Header returns the IPv6 header, its extension headers and payload of frame,
// without Ethernet padding. It is valid only for an IPv6 frame p was parsed
// from with OK.
func (p *Packet) IPv6Header(frame []byte) IPv6 { return IPv6(frame[p.L3:p.End]) }

// setMapped writes the IPv4-mapped form (::ffff:a.b.c.d) of the address at ip[0:4] into the
// upper half of d, whose lower half must already be zero: one 8-byte
// store, where building the array byte by byte costs a store per byte.
func setMapped(d *[16]byte, ip []byte) {
	binary.LittleEndian.PutUint64(d[8:16], 0xffff<<16|uint64(binary.LittleEndian.Uint32(ip[:4]))<<32)
}
