package header

import "encoding/binary"

// ICMPv4 error types besides ICMPv4DestUnreachable that IPVS relates to a
// connection (ip_vs_in_icmp): source quench and time exceeded. Every other
// type, parameter problem included, is not about a connection there.
const (
	ICMPv4SourceQuench uint8 = 4
	ICMPv4TimeExceeded uint8 = 11
)

// IsICMPError reports whether an ICMPv4 type is one of the errors IPVS
// forwards to the real server of the connection it quotes: destination
// unreachable (fragmentation needed among its codes), source quench and
// time exceeded.
func IsICMPError(t uint8) bool {
	return t == ICMPv4DestUnreachable || t == ICMPv4SourceQuench || t == ICMPv4TimeExceeded
}

// ICMPError is what ParseICMPError learns about an ICMP error message: its
// type and code, and the packet it quotes, whose addresses and ports are as
// that packet's sender wrote them. For an error about a virtual service's
// reply, Src:SrcPort is the VIP and port and Dst:DstPort the client.
type ICMPError struct {
	Type, Code       uint8
	L3               int // offset in the frame of the quoted IPv4 header
	Src, Dst         [4]byte
	Proto            uint8
	SrcPort, DstPort uint16
}

// ParseICMPError reads the ICMP message of frame, which Parse parsed into p
// and reported as UnknownProtocol with p.Proto ProtocolICMP, and fills e.
// It follows ip_vs_in_icmp's checks: the type must be an error IsICMPError
// accepts; the quoted IPv4 header and the four bytes of ports after it must
// be present; the quoted packet must be TCP or UDP and not a non-first
// fragment (which has no ports); and the ICMP checksum over the whole
// message must verify. The quoted header's own checksum and lengths are
// not checked: a router quotes what it received, and the real server's
// stack judges it. It allocates nothing.
func ParseICMPError(frame []byte, p *Packet, e *ICMPError) Reason {
	*e = ICMPError{}
	if p.IPv6 || p.Proto != ProtocolICMP || p.L4 < p.L3 || p.End > len(frame) || p.L4 > p.End {
		return UnknownProtocol
	}
	msg := frame[p.L4:p.End]
	if len(msg) < ICMPv4Len {
		return ICMPTruncated
	}
	ic := ICMPv4(msg)
	e.Type, e.Code = ic.Type(), ic.Code()
	if !IsICMPError(e.Type) {
		return ICMPNotError
	}
	q := msg[ICMPv4Len:]
	in, hl, r := quotedL4(q)
	if in != nil {
		e.Proto = in.Protocol()
	}
	if r != OK {
		return r
	}
	if Checksum(msg, 0) != 0xffff {
		return ICMPBadChecksum
	}
	e.L3 = p.L4 + ICMPv4Len
	e.Src, e.Dst = in.Src(), in.Dst()
	e.SrcPort = binary.BigEndian.Uint16(q[hl:])
	e.DstPort = binary.BigEndian.Uint16(q[hl+2:])
	return OK
}

// quotedL4 checks the IPv4 packet q that an ICMP error quotes, as
// ip_vs_in_icmp does before it looks the connection up: a whole IPv4
// header and the four bytes of ports after it, TCP or UDP, not a non-first
// fragment. It returns the header and its length; the header is nil only
// when it is truncated or not IPv4.
func quotedL4(q []byte) (in IPv4, hl int, r Reason) {
	if len(q) < IPv4MinLen {
		return nil, 0, ICMPTruncated
	}
	in = IPv4(q)
	hl = in.HeaderLen()
	if in.Version() != IPv4Version || hl < IPv4MinLen {
		return nil, 0, ICMPBadInner
	}
	if len(q) < hl+4 {
		return nil, 0, ICMPTruncated
	}
	if p := in.Protocol(); p != ProtocolTCP && p != ProtocolUDP {
		return in, hl, ICMPInnerNotL4
	}
	if in.FlagsFragment()&IPv4FragOffsetMask != 0 {
		return in, hl, ICMPInnerFragment
	}
	return in, hl, OK
}
