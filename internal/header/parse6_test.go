package header

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// ext6 is one IPv6 extension header for build6: its type and the bytes after
// its next-header and length bytes (6, 14, 22... bytes long).
type ext6 struct {
	typ  uint8
	body []byte
}

// spec6 describes an IPv6 frame for build6. Zero values give a TCP segment
// from 2001:2::1 to 2001:2:0:1::100 with hop limit 64.
type spec6 struct {
	vlan       bool
	vlanID     uint16
	proto      uint8 // ProtocolTCP (default), ProtocolUDP or ProtocolICMPv6
	tc         uint8
	flow       uint32
	hop        uint8
	src, dst   string
	sport      uint16
	dport      uint16
	syn, ack   bool
	exts       []ext6
	payload    []byte
	pad        int
	icmpType   uint8
	tcpOptsMSS bool
}

// build6 serializes s with gopacket and then splices s.exts between the
// fixed header and the upper layer, chaining their next headers and fixing
// the payload length.
func build6(t testing.TB, s spec6) []byte {
	t.Helper()
	if s.src == "" {
		s.src = "2001:2::1"
	}
	if s.dst == "" {
		s.dst = "2001:2:0:1::100"
	}
	if s.hop == 0 {
		s.hop = 64
	}
	if s.proto == 0 {
		s.proto = ProtocolTCP
	}
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC}}
	if s.vlan {
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlanID})
	}
	ip := &layers.IPv6{TrafficClass: s.tc, FlowLabel: s.flow, HopLimit: s.hop,
		SrcIP: net.ParseIP(s.src), DstIP: net.ParseIP(s.dst)}
	ls = append(ls, ip)
	switch s.proto {
	case ProtocolUDP:
		ls = append(ls, testsupport.UDP(s.sport, s.dport))
	case ProtocolICMPv6:
		ls = append(ls, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.icmpType, 0)})
	default:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport),
			Seq: 1000, Ack: 2000, SYN: s.syn, ACK: s.ack, Window: 65535}
		if s.tcpOptsMSS {
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xa0}}}
		}
		ls = append(ls, tcp)
	}
	ls = append(ls, gopacket.Payload(s.payload))
	b := testsupport.Build(t, ls...)
	l3 := 14
	if s.vlan {
		l3 = 18
	}
	// gopacket pads short frames to 60 bytes; cut that before splicing.
	b = b[:l3+40+int(binary.BigEndian.Uint16(b[l3+4:]))]
	var chain []byte
	next := b[l3+6]
	for i := len(s.exts) - 1; i >= 0; i-- {
		e := s.exts[i]
		if (len(e.body)+2)%8 != 0 {
			t.Fatalf("extension header %d: body of %d bytes", i, len(e.body))
		}
		h := append([]byte{next, byte((len(e.body)+2)/8 - 1)}, e.body...)
		chain = append(h, chain...)
		next = e.typ
	}
	b[l3+6] = next
	out := append(append(append([]byte(nil), b[:l3+40]...), chain...), b[l3+40:]...)
	put16(out, l3+4, uint16(len(out)-l3-40))
	return append(out, make([]byte, s.pad)...)
}

// Extension header bodies used by the tests.
var (
	pad6        = make([]byte, 6)                           // one PadN of 4 zero bytes
	raBody      = []byte{IPv6OptRouterAlert, 2, 0, 0, 1, 0} // Router Alert (MLD), then PadN of 0
	routingBody = append([]byte{4, 0, 0, 0, 0, 0}, make([]byte, 16)...)
)

func init() { pad6[0], pad6[1] = IPv6OptPadN, 4 }

// hbh is a hop-by-hop header carrying the option bytes o, padded with Pad1
// to a multiple of 8.
func hbh(o ...byte) ext6 {
	for (len(o)+2)%8 != 0 {
		o = append(o, IPv6OptPad1)
	}
	return ext6{ProtocolHopByHop, o}
}

func TestParseIPv6Fixtures(t *testing.T) {
	tcp := spec6{sport: 40000, dport: 80, syn: true, tc: 0xb8, flow: 0x12345, payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	at := func(s spec6, f func(b []byte, l3 int)) []byte {
		b := build6(t, s)
		l3 := 14
		if s.vlan {
			l3 = 18
		}
		f(b, l3)
		return b
	}
	withExts := func(s spec6, e ...ext6) spec6 { s.exts = e; return s }
	tests := []struct {
		name  string
		in    []byte
		want  Reason
		check func(t *testing.T, p *Packet)
	}{
		{"tcp_syn", build6(t, tcp), OK, func(t *testing.T, p *Packet) {
			want := Packet{L3: 14, L4: 54, Payload: 74, End: 14 + 40 + 20 + 18, IPv6: true,
				SrcMapped: netip.MustParseAddr("2001:2::1").As16(), DstMapped: netip.MustParseAddr("2001:2:0:1::100").As16(),
				Proto: ProtocolTCP, SrcPort: 40000, DstPort: 80, TCPFlags: TCPFlagSYN, TOS: 0xb8, DF: true, TotalLen: 78}
			if *p != want {
				t.Errorf("got %+v\nwant %+v", *p, want)
			}
		}},
		{"udp", build6(t, spec6{proto: ProtocolUDP, sport: 5353, dport: 53, payload: make([]byte, 100)}), OK, func(t *testing.T, p *Packet) {
			if !p.IPv6 || p.Proto != ProtocolUDP || p.SrcPort != 5353 || p.DstPort != 53 || p.L4 != 54 || p.Payload != 62 || p.TotalLen != 148 || p.TCPFlags != 0 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"icmpv6_echo", build6(t, spec6{proto: ProtocolICMPv6, icmpType: 128, payload: []byte{0, 1, 0, 2}}), OK, func(t *testing.T, p *Packet) {
			if p.Proto != ProtocolICMPv6 || p.L4 != 54 || p.Payload != 62 || p.SrcPort != 0 || p.DstPort != 0 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"vlan_tcp", build6(t, spec6{vlan: true, vlanID: 100, sport: 1, dport: 443, ack: true}), OK, func(t *testing.T, p *Packet) {
			if !p.HasVLAN || p.VLANTCI != 100 || p.L3 != 18 || p.L4 != 58 || p.TCPFlags != TCPFlagACK || p.DstPort != 443 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"tcp_options", build6(t, spec6{sport: 3, dport: 80, syn: true, tcpOptsMSS: true}), OK, func(t *testing.T, p *Packet) {
			if p.Payload != 54+24 {
				t.Errorf("payload at %d, want 78", p.Payload)
			}
		}},
		{"ethernet_padding", build6(t, spec6{proto: ProtocolUDP, sport: 9, dport: 9, pad: 100}), OK, func(t *testing.T, p *Packet) {
			if p.End != 14+48 || p.TotalLen != 48 {
				t.Errorf("end %d total %d", p.End, p.TotalLen)
			}
		}},
		{"udp_length_zero_is_whole_payload", at(spec6{proto: ProtocolUDP, payload: make([]byte, 10)}, func(b []byte, l3 int) { put16(b, l3+44, 0) }), OK, nil},
		{"udp_length_shorter", at(spec6{proto: ProtocolUDP, payload: make([]byte, 10)}, func(b []byte, l3 int) { put16(b, l3+44, 9) }), OK, nil},
		{"hop_by_hop_router_alert", build6(t, withExts(tcp, ext6{ProtocolHopByHop, raBody})), OK, func(t *testing.T, p *Packet) {
			if p.L4 != 14+40+8 || p.Proto != ProtocolTCP || p.TotalLen != 40+8+20+18 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"all_four_walked", build6(t, withExts(tcp, ext6{ProtocolHopByHop, pad6}, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolRouting, routingBody}, ext6{ProtocolDestOpts, pad6})), OK, func(t *testing.T, p *Packet) {
			if p.L4 != 14+40+8+8+24+8 || p.DstPort != 80 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"routing_segments_left", build6(t, withExts(tcp, ext6{ProtocolRouting, append([]byte{4, 1}, routingBody[2:]...)})), OK, nil},
		{"dest_opts_contents_not_checked", build6(t, withExts(tcp, ext6{ProtocolDestOpts, []byte{0xc9, 4, 1, 2, 3, 4}})), OK, nil},
		{"hbh_unknown_skippable", build6(t, withExts(tcp, hbh(0x1e, 2, 7, 7))), OK, nil},
		{"hbh_pad1_run_of_7", build6(t, withExts(tcp, hbh(0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0x1e, 3, 0, 0, 0))), OK, nil},
		{"hbh_eight_options", build6(t, withExts(tcp, hbh(0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0))), OK, nil},

		{"truncated_header", build6(t, tcp)[:14+39], TruncatedIP, nil},
		{"vlan_truncated", build6(t, spec6{vlan: true})[:17], TruncatedEthernet, nil},
		{"bad_version_4", at(tcp, func(b []byte, l3 int) { b[l3] = 0x40 | b[l3]&0x0f }), BadVersion, nil},
		{"payload_length_past_frame", at(tcp, func(b []byte, l3 int) { put16(b, l3+4, uint16(len(b)-l3-40+1)) }), BadTotalLength, nil},
		{"frame_cut_short", build6(t, tcp)[:14+40+20], BadTotalLength, nil},
		{"source_multicast", build6(t, spec6{src: "ff02::1"}), MartianSource, nil},
		{"source_loopback", build6(t, spec6{src: "::1"}), MartianSource, nil},
		{"source_v4_mapped", build6(t, spec6{src: "::ffff:198.18.0.1"}), MartianSource, nil},
		{"dest_loopback", build6(t, spec6{dst: "::1"}), MartianDestination, nil},
		{"dest_v4_mapped", build6(t, spec6{dst: "::ffff:198.18.0.1"}), MartianDestination, nil},
		{"dest_multicast_scope_0", build6(t, spec6{dst: "ff00::1"}), MartianDestination, nil},
		{"dest_multicast_scope_1", build6(t, spec6{dst: "ff11::1"}), MartianDestination, nil},
		{"dest_multicast_scope_2", build6(t, spec6{dst: "ff02::1"}), OK, nil},
		{"source_unspecified", build6(t, spec6{src: "::"}), OK, nil},
		{"hop_limit_zero", at(tcp, func(b []byte, l3 int) { b[l3+7] = 0 }), TTLZero, nil},
		{"jumbogram", at(withExts(tcp, hbh(0xc2, 4, 0, 1, 0, 0)), func(b []byte, l3 int) { put16(b, l3+4, 0) }), BadExtHeader, nil},
		{"hbh_jumbo_option", build6(t, withExts(tcp, hbh(0xc2, 4, 0, 1, 0, 0))), BadExtHeader, nil},
		{"hbh_not_first", build6(t, withExts(tcp, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolHopByHop, pad6})), BadExtHeader, nil},
		{"hbh_option_past_header", build6(t, withExts(tcp, ext6{ProtocolHopByHop, []byte{0x1e, 5, 0, 0, 0, 0}})), BadExtHeader, nil},
		{"hbh_length_byte_missing", build6(t, withExts(tcp, ext6{ProtocolHopByHop, []byte{0, 0, 0, 0, 0, 0x1e}})), BadExtHeader, nil},
		{"hbh_pad1_run_of_8", build6(t, withExts(tcp, hbh(0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1e, 2, 0, 0))), BadExtHeader, nil},
		{"hbh_padn_too_long", build6(t, withExts(tcp, ext6{ProtocolHopByHop, append([]byte{IPv6OptPadN, 12}, make([]byte, 12)...)})), BadExtHeader, nil},
		{"hbh_padn_not_zero", build6(t, withExts(tcp, ext6{ProtocolHopByHop, []byte{IPv6OptPadN, 4, 0, 0, 1, 0}})), BadExtHeader, nil},
		{"hbh_nine_options", build6(t, withExts(tcp, hbh(0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0, 0x1e, 0))), BadExtHeader, nil},
		{"hbh_router_alert_length_3", build6(t, withExts(tcp, ext6{ProtocolHopByHop, []byte{IPv6OptRouterAlert, 3, 0, 0, 0, IPv6OptPad1}})), BadExtHeader, nil},
		{"hbh_unknown_discard_01", build6(t, withExts(tcp, hbh(0x5e, 0))), BadExtHeader, nil},
		{"hbh_unknown_discard_10", build6(t, withExts(tcp, hbh(0x9e, 0))), BadExtHeader, nil},
		{"routing_past_payload", at(withExts(tcp, ext6{ProtocolRouting, routingBody}), func(b []byte, l3 int) { b[l3+41] = 200 }), BadExtHeader, nil},
		{"ext_header_1_byte_left", at(spec6{}, func(b []byte, l3 int) { b[l3+6] = ProtocolDestOpts; put16(b, l3+4, 1) }), BadExtHeader, nil},
		{"five_ext_headers", build6(t, withExts(tcp, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolDestOpts, pad6})), TooManyExtHeaders, nil},
		{"fragment", build6(t, withExts(tcp, ext6{ProtocolFragment, []byte{0, 1, 0, 0, 0, 7}})), IPv6Fragment, nil},
		{"atomic_fragment", build6(t, withExts(tcp, ext6{ProtocolFragment, []byte{0, 0, 0, 0, 0, 7}})), IPv6Fragment, nil},
		{"fragment_after_dest_opts", build6(t, withExts(tcp, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolFragment, []byte{0, 0, 0, 0, 0, 7}})), IPv6Fragment, nil},
		{"ah", build6(t, withExts(tcp, ext6{ProtocolAH, make([]byte, 14)})), UnknownNextHeader, nil},
		{"esp", at(tcp, func(b []byte, l3 int) { b[l3+6] = ProtocolESP }), UnknownNextHeader, nil},
		{"no_next_header", at(tcp, func(b []byte, l3 int) { b[l3+6] = ProtocolNoNext }), UnknownNextHeader, nil},
		{"ipv6_in_ipv6", at(tcp, func(b []byte, l3 int) { b[l3+6] = ProtocolIPv6 }), UnknownNextHeader, nil},
		{"truncated_tcp", at(tcp, func(b []byte, l3 int) { put16(b, l3+4, 19) }), TruncatedL4, nil},
		{"truncated_udp", at(spec6{proto: ProtocolUDP}, func(b []byte, l3 int) { put16(b, l3+4, 7) }), TruncatedL4, nil},
		{"truncated_icmpv6", at(spec6{proto: ProtocolICMPv6, icmpType: 128, payload: make([]byte, 4)}, func(b []byte, l3 int) { put16(b, l3+4, 7) }), TruncatedL4, nil},
		{"tcp_offset_past_payload", at(tcp, func(b []byte, l3 int) { b[l3+40+12] = 0xf0 }), BadTCPOffset, nil},
		{"tcp_offset_4", at(tcp, func(b []byte, l3 int) { b[l3+40+12] = 0x40 }), BadTCPOffset, nil},
		{"udp_length_past_payload", at(spec6{proto: ProtocolUDP}, func(b []byte, l3 int) { put16(b, l3+44, 9) }), BadUDPLength, nil},
		{"udp_length_4", at(spec6{proto: ProtocolUDP}, func(b []byte, l3 int) { put16(b, l3+44, 4) }), BadUDPLength, nil},
	}
	seen := make([]bool, NumReasons)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			got := Parse(tc.in, &p)
			if got != tc.want {
				t.Fatalf("Parse = %v, want %v\n% x", got, tc.want, tc.in)
			}
			if ref, rp := reference(tc.in); ref != got || got == OK && rp != p {
				t.Errorf("reference = %v %+v\nParse %+v", ref, rp, p)
			}
			if tc.check != nil {
				tc.check(t, &p)
			}
		})
		seen[tc.want] = true
	}
	for _, r := range []Reason{MartianDestination, BadExtHeader, TooManyExtHeaders, IPv6Fragment, UnknownNextHeader} {
		if !seen[r] {
			t.Errorf("no fixture for %v", r)
		}
	}
}

// randomFrame6 returns a valid IPv6 frame with random headers and a random
// chain of extension headers in RFC 8200's order.
func randomFrame6(t testing.TB, r *rand.Rand) []byte {
	s := spec6{
		vlan: r.IntN(3) == 0, vlanID: uint16(r.IntN(4095)),
		proto: []uint8{ProtocolTCP, ProtocolUDP, ProtocolICMPv6}[r.IntN(3)],
		tc:    uint8(r.Uint32()), flow: r.Uint32() & 0xfffff, hop: uint8(1 + r.IntN(255)),
		src:   fmt.Sprintf("2001:2:0:%x::%x", r.IntN(2), r.Uint32()&0xffff),
		dst:   fmt.Sprintf("2001:2:0:%x::%x", r.IntN(2), r.Uint32()&0xffff),
		sport: uint16(r.Uint32()), dport: uint16(r.Uint32()),
		syn: r.IntN(2) == 0, ack: r.IntN(2) == 0, tcpOptsMSS: r.IntN(4) == 0,
		icmpType: uint8(r.Uint32()),
		payload:  make([]byte, r.IntN(200)),
		pad:      r.IntN(3) * r.IntN(20),
	}
	if r.IntN(3) == 0 {
		s.exts = append(s.exts, []ext6{{ProtocolHopByHop, pad6}, {ProtocolHopByHop, raBody}, hbh(0x1e, 1, 0), hbh(0x1e, 0, 0, 0, 0, 0, 0, 0, 0, 0)}[r.IntN(4)])
	}
	if r.IntN(3) == 0 {
		s.exts = append(s.exts, ext6{ProtocolDestOpts, pad6})
	}
	if r.IntN(3) == 0 {
		s.exts = append(s.exts, ext6{ProtocolRouting, routingBody})
	}
	if r.IntN(3) == 0 {
		s.exts = append(s.exts, ext6{ProtocolDestOpts, []byte{0xc9, 4, 1, 2, 3, 4}})
	}
	if r.IntN(8) == 0 { // a chain longer than the walk allows, when the others came
		s.exts = append(s.exts, ext6{ProtocolDestOpts, pad6}, ext6{ProtocolDestOpts, pad6})
	}
	for i := range s.payload {
		s.payload[i] = byte(r.Uint32())
	}
	return build6(t, s)
}

// corrupt6 damages an IPv6 frame: truncation, random bytes in the headers
// and extension headers, fields of interest set to random or edge values.
func corrupt6(r *rand.Rand, f []byte) []byte {
	l3 := l3Of(f)
	set := func(at int, v byte) {
		if at < len(f) {
			f[at] = v
		}
	}
	switch r.IntN(8) {
	case 0: // truncate
		return f[:r.IntN(len(f)+1)]
	case 1: // flip bits in the headers
		for range 1 + r.IntN(3) {
			f[r.IntN(min(len(f), 120))] ^= byte(1 << r.IntN(8))
		}
	case 2: // a random byte in the extension headers or L4 header
		if len(f) > l3+40 {
			f[l3+40+r.IntN(min(len(f)-l3-40, 64))] = byte(r.Uint32())
		}
	case 3: // the next header to an interesting value
		set(l3+6, []byte{0, 6, 17, 58, 43, 44, 50, 51, 59, 60, 41, 4, 135, 255}[r.IntN(14)])
	case 4: // the payload length
		if len(f) > l3+6 {
			put16(f, l3+4, uint16(r.IntN(len(f)-l3+10)))
		}
	case 5: // a source or destination in or near a martian block
		at := l3 + 8 + 16*r.IntN(2)
		if len(f) >= at+16 {
			a := []string{"::1", "::2", "ff02::1", "ff00::1", "ff01::1", "ff0e::1", "::ffff:1.2.3.4", "::fffe:1.2.3.4", "::", "fe80::1"}[r.IntN(10)]
			copy(f[at:], netip.MustParseAddr(a).AsSlice())
		}
	case 6: // hop limit 0 or 1
		set(l3+7, byte(r.IntN(2)))
	case 7: // random small option bytes in a first extension header
		for i := l3 + 42; i < l3+48 && i < len(f); i++ {
			f[i] = []byte{0, 1, 2, 4, 5, 0x1e, 0x5e, 0xc2, byte(r.Uint32())}[r.IntN(9)]
		}
	}
	return f
}

// TestParseIPv6Differential compares Parse with the gopacket reference model
// on random valid IPv6 frames and random corruptions of them.
func TestParseIPv6Differential(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	counts := make([]int, NumReasons)
	for i := range 20000 {
		f := randomFrame6(t, r)
		if i%3 != 0 {
			f = corrupt6(r, f)
		}
		var p Packet
		got := Parse(f, &p)
		want, wp := reference(f)
		counts[got]++
		if got != want {
			t.Fatalf("frame %d: Parse = %v, reference = %v\n% x", i, got, want, f)
		}
		if got == OK && p != wp {
			t.Fatalf("frame %d: Parse packet\n%+v\nreference\n%+v\n% x", i, p, wp, f)
		}
	}
	var seen bytes.Buffer
	for i, c := range counts {
		fmt.Fprintf(&seen, "%v=%d ", Reason(i), c)
	}
	t.Log(seen.String())
	for _, r := range []Reason{OK, TruncatedIP, BadVersion, BadTotalLength, MartianSource, MartianDestination, TTLZero,
		BadExtHeader, TooManyExtHeaders, IPv6Fragment, UnknownNextHeader, TruncatedL4, BadTCPOffset, BadUDPLength} {
		if counts[r] == 0 {
			t.Errorf("no frame hit %v", r)
		}
	}
}

func TestParseIPv6Allocs(t *testing.T) {
	frames := [][]byte{
		build6(t, spec6{sport: 1, dport: 80, syn: true}),
		build6(t, spec6{proto: ProtocolUDP, vlan: true, exts: []ext6{{ProtocolHopByHop, raBody}, {ProtocolRouting, routingBody}}}),
		build6(t, spec6{exts: []ext6{{ProtocolFragment, pad6}}}),
		build6(t, spec6{})[:50],
	}
	var p Packet
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { Parse(f, &p) }); n != 0 {
			t.Errorf("Parse allocates %v times", n)
		}
	}
}
