package header

// Packet is what Parse learns about a frame. Offsets are from the start of the
// frame passed to Parse, so they stay valid if the frame is later viewed
// through another slice of the same memory at the same start. A Packet is a
// plain value: a worker keeps one per frame of its batch and reuses it.
type Packet struct {
	L3      int // offset of the IPv4 header: 14, or 18 with an 802.1Q tag
	L4      int // offset of the TCP or UDP header
	Payload int // offset of the L4 payload
	End     int // L3 + TotalLen; bytes from End on are Ethernet padding

	HasVLAN bool
	VLANTCI uint16 // priority, DEI and VLAN ID, when HasVLAN

	Src, Dst             [4]byte
	SrcMapped, DstMapped [16]byte // ::ffff:a.b.c.d (RFC 4291 2.5.5.2), the connection table's key form

	Proto            uint8
	SrcPort, DstPort uint16 // host order
	TCPFlags         uint8  // zero for UDP
	TOS              uint8
	DF               bool
	ID               uint16
	TotalLen         uint16 // IPv4 total length: header, options and L4
}

// IPv4 returns the IPv4 header and payload of frame, without Ethernet padding.
// It is valid only for the frame p was parsed from with OK.
func (p *Packet) IPv4(frame []byte) IPv4 { return IPv4(frame[p.L3:p.End]) }

// mapped returns a as an IPv4-mapped IPv6 address.
func mapped(a [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
}
