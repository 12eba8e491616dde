package header

import "encoding/binary"

// ICMPv6 error types (RFC 4443 section 3) besides ICMPv6PacketTooBig.
const (
	ICMPv6DestUnreachable uint8 = 1
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
)

// IsICMPv6Error reports whether an ICMPv6 type is one of the errors the
// director relates to a connection: destination unreachable, packet too
// big, time exceeded and parameter problem. ip_vs_in_icmp_v6 takes every
// type below 128 (ICMPV6_INFOMSG_MASK clear); these four are all RFC 4443
// defines there. Informational messages (echo, neighbour discovery, MLD)
// are never errors.
func IsICMPv6Error(t uint8) bool {
	return t >= ICMPv6DestUnreachable && t <= ICMPv6ParamProblem
}

// ICMPError6 is what ParseICMPv6Error learns about an ICMPv6 error message:
// its type and code, and the IPv6 packet it quotes, whose addresses and
// ports are as that packet's sender wrote them. For an error about a
// virtual service's reply, Src:SrcPort is the VIP and port and Dst:DstPort
// the client.
type ICMPError6 struct {
	Type, Code       uint8
	L3               int // offset in the frame of the quoted IPv6 header
	Src, Dst         [16]byte
	Proto            uint8
	SrcPort, DstPort uint16
}

// ParseICMPv6Error reads the ICMPv6 message of frame, which Parse parsed
// into p with OK and p.Proto ProtocolICMPv6, and fills e. It follows
// ip_vs_in_icmp_v6: the type must be one IsICMPv6Error accepts
// (ICMPNotError otherwise); the quoted IPv6 header must be whole
// (ICMPTruncated) and of version 6 (ICMPBadInner); its extension headers
// are walked as Parse walks the packet's own - at most MaxIPv6ExtHeaders
// of hop-by-hop (first only), routing, destination options and fragment
// headers, each's first 8 bytes present (ICMPTruncated), else
// ICMPBadInner - where a fragment header of a non-zero offset means a
// packet without ports (ICMPInnerFragment); the upper layer must be TCP or
// UDP (ICMPInnerNotL4) with its four bytes of ports present
// (ICMPTruncated); and the ICMPv6 checksum over the pseudo-header and the
// whole message must verify (ICMPBadChecksum). The quoted packet's own
// lengths are not checked: a router quotes what it received. It
// allocates nothing.
func ParseICMPv6Error(frame []byte, p *Packet, e *ICMPError6) Reason {
	*e = ICMPError6{}
	if !p.IPv6 || p.Proto != ProtocolICMPv6 || p.L4 < p.L3 || p.End > len(frame) || p.L4 > p.End {
		return UnknownProtocol
	}
	msg := frame[p.L4:p.End]
	if len(msg) < ICMPv6Len {
		return ICMPTruncated
	}
	e.Type, e.Code = msg[0], msg[1]
	if !IsICMPv6Error(e.Type) {
		return ICMPNotError
	}
	q := msg[ICMPv6Len:]
	if len(q) < IPv6Len {
		return ICMPTruncated
	}
	in := IPv6(q)
	if in.Version() != IPv6Version {
		return ICMPBadInner
	}
	next, off := in.NextHeader(), IPv6Len
	for n := 0; next != ProtocolTCP && next != ProtocolUDP; n++ {
		switch next {
		case ProtocolHopByHop, ProtocolRouting, ProtocolDestOpts, ProtocolFragment:
		default:
			e.Proto = next
			return ICMPInnerNotL4
		}
		if n == MaxIPv6ExtHeaders || next == ProtocolHopByHop && n != 0 {
			return ICMPBadInner
		}
		if len(q)-off < 8 {
			return ICMPTruncated
		}
		hl := (int(q[off+1]) + 1) * 8
		if next == ProtocolFragment {
			if binary.BigEndian.Uint16(q[off+2:])&^7 != 0 {
				e.Proto = ProtocolFragment
				return ICMPInnerFragment
			}
			hl = 8
		}
		next = q[off]
		off += hl
	}
	e.Proto = next
	if len(q)-off < 4 {
		return ICMPTruncated
	}
	src, dst := IPv6(frame[p.L3:]).Src(), IPv6(frame[p.L3:]).Dst()
	ph := PseudoHeaderChecksumIPv6(ProtocolICMPv6, src, dst, uint32(len(msg)))
	if Checksum(msg, ph) != 0xffff {
		return ICMPBadChecksum
	}
	e.L3 = p.L4 + ICMPv6Len
	e.Src, e.Dst = in.Src(), in.Dst()
	e.SrcPort = binary.BigEndian.Uint16(q[off:])
	e.DstPort = binary.BigEndian.Uint16(q[off+2:])
	return OK
}
