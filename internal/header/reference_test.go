package header

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// reference decodes frame with gopacket's DecodingLayers and applies the rules
// documented in doc.go to the fields gopacket extracted. It is the model Parse
// is checked against; where gopacket is more lenient (it does not check the
// IP version, verify the IPv4 checksum, or reject UDP length 0) the rule is
// applied here on top of gopacket's fields, and where it is stricter (it
// validates IPv4 and TCP options, which Parse skips) its error is ignored.
func reference(frame []byte) (Reason, Packet) {
	var p Packet
	df := gopacket.NilDecodeFeedback
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, df); err != nil {
		return TruncatedEthernet, p
	}
	et := eth.EthernetType
	data := eth.Payload
	p.L3 = 14
	if et == layers.EthernetTypeDot1Q {
		var q layers.Dot1Q
		if err := q.DecodeFromBytes(data, df); err != nil {
			return TruncatedEthernet, p
		}
		p.HasVLAN = true
		p.VLANTCI = uint16(q.Priority)<<13 | q.VLANIdentifier
		if q.DropEligible {
			p.VLANTCI |= 1 << 12
		}
		et = q.Type
		data = q.Payload
		p.L3 = 18
	}
	if et == layers.EthernetTypeIPv6 {
		return reference6(frame, p)
	}
	if et != layers.EthernetTypeIPv4 {
		return NotIPv4, p
	}
	if len(data) < 20 {
		return TruncatedIP, p
	}
	rawLen := int(binary.BigEndian.Uint16(data[2:4])) // gopacket turns 0 into len(data)
	var ip layers.IPv4
	_ = ip.DecodeFromBytes(data, df) // fixed fields are set before any error
	if ip.Version != 4 {
		return BadVersion, p
	}
	if ip.IHL < 5 {
		return BadIHL, p
	}
	hl := int(ip.IHL) * 4
	if hl > len(data) {
		return TruncatedIP, p
	}
	if rawLen < hl || rawLen > len(data) {
		return BadTotalLength, p
	}
	if refChecksum(data[:hl]) != 0xffff {
		return BadChecksum, p
	}
	if !refOptionsValid(data[:rawLen]) {
		return BadIPOptions, p
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	for _, m := range martianBlocks {
		if m.Contains(src) {
			return MartianSource, p
		}
	}
	if ip.TTL == 0 {
		return TTLZero, p
	}
	if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		return Fragment, p
	}
	p.End = p.L3 + rawLen
	p.TotalLen = uint16(rawLen)
	p.TOS = ip.TOS
	p.DF = ip.Flags&layers.IPv4DontFragment != 0
	p.ID = ip.Id
	p.Src = [4]byte(ip.SrcIP.To4())
	p.Dst = [4]byte(ip.DstIP.To4())
	p.SrcMapped = [16]byte(ip.SrcIP.To16())
	p.DstMapped = [16]byte(ip.DstIP.To16())
	p.Proto = uint8(ip.Protocol)
	p.L4 = p.L3 + hl
	l4 := data[hl:rawLen]
	switch ip.Protocol {
	case layers.IPProtocolTCP:
		return refTCP(l4, p)
	case layers.IPProtocolUDP:
		var udp layers.UDP
		if err := udp.DecodeFromBytes(l4, df); err != nil && len(l4) < 8 {
			return TruncatedL4, p
		}
		if udp.Length < 8 || int(udp.Length) > len(l4) {
			return BadUDPLength, p
		}
		p.SrcPort, p.DstPort = uint16(udp.SrcPort), uint16(udp.DstPort)
		p.Payload = p.L4 + 8
	default:
		return UnknownProtocol, p
	}
	return OK, p
}

// refTCP decodes the TCP header l4 into p, whose L4 is set.
func refTCP(l4 []byte, p Packet) (Reason, Packet) {
	var tcp layers.TCP
	if len(l4) < 20 {
		return TruncatedL4, p
	}
	_ = tcp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback) // option errors are not ours
	if tcp.DataOffset < 5 || int(tcp.DataOffset)*4 > len(l4) {
		return BadTCPOffset, p
	}
	p.SrcPort, p.DstPort = uint16(tcp.SrcPort), uint16(tcp.DstPort)
	for i, b := range []bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR} {
		if b {
			p.TCPFlags |= 1 << i
		}
	}
	p.Payload = p.L4 + int(tcp.DataOffset)*4
	return OK, p
}

// martianBlocks are the source blocks no host may use.
var martianBlocks = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
}

// refOptionsValid lets gopacket walk the options of pkt, an IPv4 packet
// whose header and total length are known to be sound. gopacket refuses an
// option of length 2, which Linux's ip_options_compile accepts (type and
// length, no data), so each such option gopacket stops at is replaced by two
// No Operation bytes, which occupy the same two bytes, and the walk is
// repeated. Any other gopacket option error is a malformed option.
func refOptionsValid(pkt []byte) bool {
	b := append([]byte(nil), pkt...)
	hl := int(b[0]&0x0f) * 4
	for {
		var ip layers.IPv4
		if ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback) == nil {
			return true
		}
		at := 20
		for _, o := range ip.Options {
			at += int(o.OptionLength)
		}
		if at+1 >= hl || b[at+1] != 2 {
			return false
		}
		b[at], b[at+1] = 1, 1
	}
}
