package header

// ParseFragment reads on in frame, which Parse parsed into p and reported
// as Fragment. For the first fragment (offset 0, MF set) it reads the
// transport header as Parse does for a whole packet, but accepts a UDP
// length beyond the fragment (it covers the whole datagram), and reports
// first true; the TCP header must lie whole inside the fragment, so a tiny
// first fragment that splits it (RFC 1858) is refused. A later fragment
// has no transport header: its ports stay 0. Either must be TCP or UDP,
// the protocols a virtual service carries. It allocates nothing.
func ParseFragment(frame []byte, p *Packet) (first bool, r Reason) {
	if p.IPv6 || p.L3 < EthernetLen || p.L4 < p.L3+IPv4MinLen || p.End > len(frame) || p.L4 > p.End {
		return false, Fragment
	}
	if p.Proto != ProtocolTCP && p.Proto != ProtocolUDP {
		return false, UnknownProtocol
	}
	if IPv4(frame[p.L3:]).FlagsFragment()&IPv4FragOffsetMask != 0 {
		return false, OK
	}
	l4, l4Len := p.L4, p.End-p.L4
	switch p.Proto {
	case ProtocolTCP:
		if l4Len < TCPMinLen {
			return true, TruncatedL4
		}
		tcp := TCP(frame[l4:p.End])
		off := tcp.HeaderLen()
		if off < TCPMinLen || off > l4Len {
			return true, BadTCPOffset
		}
		p.SrcPort, p.DstPort, p.TCPFlags = tcp.SrcPort(), tcp.DstPort(), tcp.Flags()
		p.Payload = l4 + off
	default:
		if l4Len < UDPLen {
			return true, TruncatedL4
		}
		udp := UDP(frame[l4:p.End])
		if udp.Length() < UDPLen {
			return true, BadUDPLength
		}
		p.SrcPort, p.DstPort = udp.SrcPort(), udp.DstPort()
		p.Payload = l4 + UDPLen
	}
	return true, OK
}
