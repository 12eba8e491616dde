package header

// Parse decodes frame into p and reports whether the director can forward it.
// It allocates nothing and reads each header byte at most a few times. On any
// Reason but OK the contents of p are unspecified. See the package doc for
// which malformations are dropped and why.
func Parse(frame []byte, p *Packet) Reason {
	*p = Packet{}
	if len(frame) < EthernetLen {
		return TruncatedEthernet
	}
	eth := Ethernet(frame)
	l3 := EthernetLen
	et := eth.EtherType()
	if et == EtherTypeVLAN {
		if len(frame) < EthernetLen+VLANTagLen {
			return TruncatedEthernet
		}
		p.HasVLAN = true
		p.VLANTCI = eth.VLANTCI()
		et = eth.InnerEtherType()
		l3 += VLANTagLen
	}
	if et != EtherTypeIPv4 {
		return NotIPv4
	}
	p.L3 = l3

	avail := len(frame) - l3
	if avail < IPv4MinLen {
		return TruncatedIP
	}
	ip := IPv4(frame[l3:])
	if ip.Version() != IPv4Version {
		return BadVersion
	}
	hl := ip.HeaderLen()
	if hl < IPv4MinLen {
		return BadIHL
	}
	if hl > avail {
		return TruncatedIP
	}
	total := int(ip.TotalLength())
	if total < hl || total > avail {
		return BadTotalLength
	}
	if !IPv4(frame[l3 : l3+hl]).IsChecksumValid() {
		return BadChecksum
	}
	ff := ip.FlagsFragment()
	if ff&(IPv4FlagMF|IPv4FragOffsetMask) != 0 {
		return Fragment
	}

	p.End = l3 + total
	p.TotalLen = uint16(total)
	p.TOS = ip.TOS()
	p.DF = ff&IPv4FlagDF != 0
	p.ID = ip.ID()
	p.Src = ip.Src()
	p.Dst = ip.Dst()
	p.SrcMapped = mapped(p.Src)
	p.DstMapped = mapped(p.Dst)
	p.Proto = ip.Protocol()

	l4 := l3 + hl
	l4Len := total - hl
	p.L4 = l4
	switch p.Proto {
	case ProtocolTCP:
		if l4Len < TCPMinLen {
			return TruncatedL4
		}
		tcp := TCP(frame[l4:p.End])
		off := tcp.HeaderLen()
		if off < TCPMinLen || off > l4Len {
			return BadTCPOffset
		}
		p.SrcPort = tcp.SrcPort()
		p.DstPort = tcp.DstPort()
		p.TCPFlags = tcp.Flags()
		p.Payload = l4 + off
	case ProtocolUDP:
		if l4Len < UDPLen {
			return TruncatedL4
		}
		udp := UDP(frame[l4:p.End])
		// Linux (__udp4_lib_rcv) drops a UDP length outside [8, IP payload]
		// and trims a shorter one, so a shorter length is not an error.
		if ul := int(udp.Length()); ul < UDPLen || ul > l4Len {
			return BadUDPLength
		}
		p.SrcPort = udp.SrcPort()
		p.DstPort = udp.DstPort()
		p.Payload = l4 + UDPLen
	default:
		return UnknownProtocol
	}
	return OK
}
