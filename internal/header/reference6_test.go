package header

import (
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// reference6 is reference for the IPv6 packet at frame[p.L3:]: gopacket
// decodes the fixed header, each extension header (IPv6Destination decodes
// the next-header and length bytes every walked kind shares), the hop-by-hop
// options and the upper-layer header, and the rules of doc.go are applied to
// what it decoded. Address classes come from net/netip, not from the bytes.
func reference6(frame []byte, p Packet) (Reason, Packet) {
	df := gopacket.NilDecodeFeedback
	data := frame[p.L3:]
	if len(data) < 40 {
		return TruncatedIP, p
	}
	var ip layers.IPv6
	_ = ip.DecodeFromBytes(data, df) // the fixed fields are set before any error
	if ip.Version != 6 {
		return BadVersion, p
	}
	total := 40 + int(ip.Length)
	if total > len(data) || total > 65535 {
		return BadTotalLength, p
	}
	src := netip.AddrFrom16([16]byte(ip.SrcIP))
	dst := netip.AddrFrom16([16]byte(ip.DstIP))
	if src.IsMulticast() || src.IsLoopback() || src.Is4In6() {
		return MartianSource, p
	}
	if dst.IsLoopback() || dst.Is4In6() || dst.IsInterfaceLocalMulticast() || dst.IsMulticast() && dst.As16()[1]&0x0f == 0 {
		return MartianDestination, p
	}
	if ip.HopLimit == 0 {
		return TTLZero, p
	}
	payload := data[40:total]
	next := ip.NextHeader
	at := 40
	for n := 0; ; n++ {
		switch next {
		case layers.IPProtocolTCP, layers.IPProtocolUDP, layers.IPProtocolICMPv6:
		case layers.IPProtocolIPv6HopByHop, layers.IPProtocolIPv6Routing, layers.IPProtocolIPv6Destination:
			if n == MaxIPv6ExtHeaders {
				return TooManyExtHeaders, p
			}
			var ext layers.IPv6Destination
			_ = ext.DecodeFromBytes(payload, df) // option errors are not ours
			if ext.ActualLength == 0 {
				return BadExtHeader, p
			}
			if next == layers.IPProtocolIPv6HopByHop && (n != 0 || !refHopByHopValid(ext.Contents)) {
				return BadExtHeader, p
			}
			next = ext.NextHeader
			payload = payload[ext.ActualLength:]
			at += ext.ActualLength
			continue
		case layers.IPProtocolIPv6Fragment:
			return IPv6Fragment, p
		default:
			return UnknownNextHeader, p
		}
		break
	}
	p.IPv6 = true
	p.End = p.L3 + total
	p.TotalLen = uint16(total)
	p.TOS = ip.TrafficClass
	p.DF = true
	p.SrcMapped, p.DstMapped = src.As16(), dst.As16()
	p.Proto = uint8(next)
	p.L4 = p.L3 + at
	switch next {
	case layers.IPProtocolTCP:
		return refTCP(payload, p)
	case layers.IPProtocolUDP:
		var udp layers.UDP
		if err := udp.DecodeFromBytes(payload, df); err != nil && len(payload) < 8 {
			return TruncatedL4, p
		}
		if udp.Length != 0 && (udp.Length < 8 || int(udp.Length) > len(payload)) {
			return BadUDPLength, p
		}
		p.SrcPort, p.DstPort = uint16(udp.SrcPort), uint16(udp.DstPort)
		p.Payload = p.L4 + 8
	default:
		var icmp layers.ICMPv6
		if err := icmp.DecodeFromBytes(payload, df); err != nil || len(icmp.Payload) < 4 {
			return TruncatedL4, p
		}
		p.Payload = p.L4 + 8
	}
	return OK, p
}

// refHopByHopValid applies ip6_parse_tlv's rules (see hopByHopValid) to the
// options gopacket decodes from hdr, a whole hop-by-hop header. gopacket
// wants two bytes even for a Pad1 option, so a Pad1 in the header's last
// byte, where its decoding stops, is accepted here.
func refHopByHopValid(hdr []byte) bool {
	var h layers.IPv6HopByHop
	err := h.DecodeFromBytes(hdr, gopacket.NilDecodeFeedback)
	at := 2
	for _, o := range h.Options {
		at += o.ActualLength
	}
	opts := h.Options
	if err != nil {
		if at != len(hdr)-1 || hdr[at] != 0 {
			return false
		}
		opts = append(opts, &layers.IPv6HopByHopOption{OptionType: 0})
	}
	pad, count := 0, 0
	for _, o := range opts {
		switch o.OptionType {
		case 0:
			pad++
		case 1:
			pad += int(o.OptionLength) + 2
			for _, b := range o.OptionData {
				if b != 0 {
					return false
				}
			}
		default:
			count++
			if count > 8 {
				return false
			}
			if o.OptionType == 5 && o.OptionLength != 2 || o.OptionType != 5 && o.OptionType&0xc0 != 0 {
				return false
			}
			pad = 0
		}
		if pad > 7 {
			return false
		}
	}
	return true
}
