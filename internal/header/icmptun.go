package header

import "encoding/binary"

// ICMPTunnelError is what ParseICMPTunnelError learns about an ICMP error
// that quotes an IPIP packet: the error's type, code and second word
// (the next-hop MTU of a fragmentation-needed), the quoted outer header's
// addresses, and the tunnelled packet it carries, whose addresses and
// ports are as its sender wrote them. For an error about a VS/TUN packet
// of the director's, OuterSrc is the director, OuterDst the real server,
// Src:SrcPort the client and Dst:DstPort the VIP and port.
type ICMPTunnelError struct {
	Type, Code         uint8
	Rest               uint32
	OuterSrc, OuterDst [4]byte
	// L3 is the offset in the frame of the tunnelled IPv4 header, End
	// the end of the quoted bytes.
	L3, End          int
	Src, Dst         [4]byte
	Proto            uint8
	SrcPort, DstPort uint16
	DF               bool // the tunnelled packet had DF set
}

// QuotesIPIP reports whether the ICMP message of frame, parsed into p,
// quotes an IPv4 header whose protocol is IPIP.
func QuotesIPIP(frame []byte, p *Packet) bool {
	q := p.L4 + ICMPv4Len
	return !p.IPv6 && p.Proto == ProtocolICMP && p.End <= len(frame) && q+IPv4MinLen <= p.End &&
		frame[q]>>4 == IPv4Version && frame[q+9] == ProtocolIPIP
}

// ParseICMPTunnelError reads the ICMP message of frame, which Parse
// parsed into p, when it quotes an IPIP packet, and fills e. It follows
// ip_vs_in_icmp's checks for one: the type must be an error IsICMPError
// accepts; the quoted outer header must be whole and not a non-first
// fragment; the tunnelled IPv4 header and the four bytes of ports after
// it must be present; the tunnelled packet must be TCP or UDP and not a
// non-first fragment; and the ICMP checksum over the whole message must
// verify. It allocates nothing.
func ParseICMPTunnelError(frame []byte, p *Packet, e *ICMPTunnelError) Reason {
	*e = ICMPTunnelError{}
	if !QuotesIPIP(frame, p) {
		return UnknownProtocol
	}
	msg := frame[p.L4:p.End]
	ic := ICMPv4(msg)
	e.Type, e.Code, e.Rest = ic.Type(), ic.Code(), ic.Rest()
	if !IsICMPError(e.Type) {
		return ICMPNotError
	}
	outer := IPv4(msg[ICMPv4Len:])
	ohl := outer.HeaderLen()
	if ohl < IPv4MinLen {
		return ICMPBadInner
	}
	if outer.FlagsFragment()&IPv4FragOffsetMask != 0 {
		return ICMPInnerFragment
	}
	q := msg[ICMPv4Len:]
	if len(q) < ohl+IPv4MinLen {
		return ICMPTruncated
	}
	in, hl, r := quotedL4(q[ohl:])
	if in != nil {
		e.Proto = in.Protocol()
	}
	if r != OK {
		return r
	}
	if Checksum(msg, 0) != 0xffff {
		return ICMPBadChecksum
	}
	e.OuterSrc, e.OuterDst = outer.Src(), outer.Dst()
	e.L3, e.End = p.L4+ICMPv4Len+ohl, p.End
	e.Src, e.Dst, e.DF = in.Src(), in.Dst(), in.DF()
	e.SrcPort = binary.BigEndian.Uint16(in[hl:])
	e.DstPort = binary.BigEndian.Uint16(in[hl+2:])
	return OK
}
