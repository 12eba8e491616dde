package header

// Parse decodes frame into p and reports whether the director can forward it.
// It allocates nothing and reads each header byte at most a few times. On
// Fragment and UnknownProtocol the IPv4 fields of p (L3, L4, End, TotalLen,
// TOS, DF, ID, the addresses and Proto) are filled, so that ParseFragment
// and ParseICMPError can read on; on any other Reason but OK the contents
// of p are unspecified. See the package doc for which malformations are
// dropped and why.
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
		if et == EtherTypeIPv6 {
			return parseIPv6(frame, l3, p)
		}
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
	if !headerChecksumValid(frame[l3 : l3+hl]) {
		return BadChecksum
	}
	if hl > IPv4MinLen && !optionsValid(frame[l3+IPv4MinLen:l3+hl]) {
		return BadIPOptions
	}
	if martian(ip[12]) {
		return MartianSource
	}
	if ip.TTL() == 0 {
		return TTLZero
	}
	ff := ip.FlagsFragment()

	p.End = l3 + total
	p.TotalLen = uint16(total)
	p.TOS = ip.TOS()
	p.DF = ff&IPv4FlagDF != 0
	p.ID = ip.ID()
	p.Src = ip.Src()
	p.Dst = ip.Dst()
	setMapped(&p.SrcMapped, ip[12:16]) // *p was zeroed above
	setMapped(&p.DstMapped, ip[16:20])
	p.Proto = ip.Protocol()

	l4 := l3 + hl
	l4Len := total - hl
	p.L4 = l4
	if ff&(IPv4FlagMF|IPv4FragOffsetMask) != 0 {
		return Fragment // ParseFragment reads on
	}
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

// optionsValid walks the IPv4 options in opts as ip_options_compile does:
// End of Options List ends the walk, No Operation is one byte, and every
// other option carries its own length in its second byte, which must be at
// least 2 (type and length) and must not run past the header. The contents
// of an option are the real server's business and are not checked.
func optionsValid(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch opts[i] {
		case IPv4OptEOL:
			return true
		case IPv4OptNOP:
			i++
		default:
			if i+1 >= len(opts) {
				return false // no room for the length byte
			}
			n := int(opts[i+1])
			if n < 2 || n > len(opts)-i {
				return false
			}
			i += n
		}
	}
	return true
}

// martian reports whether an IPv4 source address whose first byte is a
// belongs to a block no host may send from: "this network" 0.0.0.0/8,
// loopback 127.0.0.0/8, multicast 224.0.0.0/4 and the reserved
// 240.0.0.0/4, which holds the limited broadcast 255.255.255.255. Linux
// (ip_route_input_slow) drops these as martian sources before IPVS sees
// them. All four are whole /8 or wider blocks, so the first byte decides.
func martian(a byte) bool { return a == 0 || a == 127 || a >= 224 }
