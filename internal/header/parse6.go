package header

// parseIPv6 is Parse for the IPv6 packet at frame[l3:]; Parse has read the
// Ethernet header and any 802.1Q tag and zeroed p. See the package doc for
// the rules.
func parseIPv6(frame []byte, l3 int, p *Packet) Reason {
	p.L3 = l3
	avail := len(frame) - l3
	if avail < IPv6Len {
		return TruncatedIP
	}
	ip := IPv6(frame[l3:])
	if ip.Version() != IPv6Version {
		return BadVersion
	}
	total := IPv6Len + int(ip.PayloadLength())
	if total > avail || total > 0xffff {
		return BadTotalLength
	}
	src, dst := ip.Src(), ip.Dst()
	if martianSource6(&src) {
		return MartianSource
	}
	if martianDestination6(&dst) {
		return MartianDestination
	}
	if ip.HopLimit() == 0 {
		return TTLZero
	}
	end := l3 + total
	next := ip.NextHeader()
	off := l3 + IPv6Len
	for n := 0; ; n++ {
		switch next {
		case ProtocolTCP, ProtocolUDP, ProtocolICMPv6:
		case ProtocolHopByHop, ProtocolRouting, ProtocolDestOpts:
			if n == MaxIPv6ExtHeaders {
				return TooManyExtHeaders
			}
			if end-off < 2 {
				return BadExtHeader
			}
			hl := (int(frame[off+1]) + 1) * 8
			if hl > end-off {
				return BadExtHeader
			}
			if next == ProtocolHopByHop && (n != 0 || !hopByHopValid(frame[off+2:off+hl])) {
				return BadExtHeader
			}
			next = frame[off]
			off += hl
			continue
		case ProtocolFragment:
			return IPv6Fragment
		default:
			return UnknownNextHeader
		}
		break
	}

	p.IPv6 = true
	p.End = end
	p.TotalLen = uint16(total)
	p.TOS = ip.TrafficClass()
	p.DF = true
	p.SrcMapped = src
	p.DstMapped = dst
	p.Proto = next
	p.L4 = off
	l4Len := end - off
	switch next {
	case ProtocolTCP:
		if l4Len < TCPMinLen {
			return TruncatedL4
		}
		tcp := TCP(frame[off:end])
		hl := tcp.HeaderLen()
		if hl < TCPMinLen || hl > l4Len {
			return BadTCPOffset
		}
		p.SrcPort = tcp.SrcPort()
		p.DstPort = tcp.DstPort()
		p.TCPFlags = tcp.Flags()
		p.Payload = off + hl
	case ProtocolUDP:
		if l4Len < UDPLen {
			return TruncatedL4
		}
		udp := UDP(frame[off:end])
		// __udp6_lib_rcv reads a UDP length of 0 as "the rest of the
		// packet" (RFC 2675's jumbogram rule) and otherwise drops one
		// outside [8, IPv6 payload], as IPv4 does.
		if ul := int(udp.Length()); ul != 0 && (ul < UDPLen || ul > l4Len) {
			return BadUDPLength
		}
		p.SrcPort = udp.SrcPort()
		p.DstPort = udp.DstPort()
		p.Payload = off + UDPLen
	default: // ProtocolICMPv6, the only other way out of the walk
		if l4Len < ICMPv6Len {
			return TruncatedL4
		}
		p.Payload = off + ICMPv6Len
	}
	return OK
}

// hopByHopValid walks the options of a hop-by-hop header (opts is the header
// after its next-header and length bytes) as Linux's ip6_parse_tlv does
// before IPVS sees the packet: Pad1 is one byte, every other option carries
// its length and must fit; padding runs of more than 7 bytes and PadN with
// non-zero contents are malformed; more than MaxHopByHopOptions other options
// are too many; Router Alert must have 2 bytes of data; and an option the
// director does not know whose type's top two bits ask for a discard
// (RFC 8200 section 4.2: 01, 10 and 11) is dropped. That last rule drops the
// Jumbo Payload option too, which cannot be valid in a frame the director
// receives (it needs more than 65535 bytes).
func hopByHopValid(opts []byte) bool {
	pad, count := 0, 0
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == IPv6OptPad1 {
			if pad++; pad > 7 {
				return false
			}
			i++
			continue
		}
		if len(opts)-i < 2 {
			return false
		}
		n := int(opts[i+1]) + 2
		if n > len(opts)-i {
			return false
		}
		if t == IPv6OptPadN {
			if pad += n; pad > 7 {
				return false
			}
			for _, b := range opts[i+2 : i+n] {
				if b != 0 {
					return false
				}
			}
		} else {
			if count++; count > MaxHopByHopOptions {
				return false
			}
			if t == IPv6OptRouterAlert && n != 4 {
				return false
			}
			if t != IPv6OptRouterAlert && t>>6 != 0 {
				return false
			}
			pad = 0
		}
		i += n
	}
	return true
}

// martianSource6 reports whether a is an IPv6 source no packet from another
// node may carry: the loopback ::1 and multicast ff00::/8, which Linux's
// ip6_rcv_core drops (RFC 4291 2.5.3 and 2.7), and the IPv4-mapped
// ::ffff:0:0/96, which is no IPv6 node's address (RFC 4291 2.5.5.2) and would
// alias an IPv4 client in the connection table.
func martianSource6(a *[16]byte) bool {
	return a[0] == 0xff || loopback6(a) || mapped6(a)
}

// martianDestination6 reports whether a is an IPv6 destination Linux's
// ip6_rcv_core drops from the wire (loopback, multicast of the reserved scope
// 0 or the interface-local scope 1), or IPv4-mapped.
func martianDestination6(a *[16]byte) bool {
	return a[0] == 0xff && a[1]&0x0f <= 1 || loopback6(a) || mapped6(a)
}

func loopback6(a *[16]byte) bool { return *a == [16]byte{15: 1} }

func mapped6(a *[16]byte) bool {
	return [12]byte(a[:12]) == [12]byte{10: 0xff, 11: 0xff}
}
