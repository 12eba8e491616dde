package header

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// edit builds s and applies f to the frame; fix recomputes the IPv4 header
// checksum afterwards so that f's change reaches the check it targets.
func edit(t testing.TB, s spec, fix bool, f func(b []byte, l3 int) []byte) []byte {
	b := build(t, s)
	l3 := 14
	if s.vlan {
		l3 = 18
	}
	b = f(b, l3)
	if fix {
		fixIPChecksum(b, l3)
	}
	return b
}

func put16(b []byte, at int, v uint16) { binary.BigEndian.PutUint16(b[at:], v) }

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testsupport.Build(t, ls...)
}

var routerAlert = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}

func TestParseFixtures(t *testing.T) {
	tcp := spec{sport: 40000, dport: 80, syn: true, df: true, tos: 0x10, id: 0x1234, payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	udp := spec{udp: true, sport: 5353, dport: 53, id: 7, payload: make([]byte, 100)}
	ethMAC := &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC}
	tests := []struct {
		name  string
		in    []byte
		want  Reason
		check func(t *testing.T, p *Packet)
	}{
		{"tcp_syn", build(t, tcp), OK, func(t *testing.T, p *Packet) {
			want := Packet{L3: 14, L4: 34, Payload: 54, End: 14 + 58,
				Src: [4]byte{198, 18, 0, 1}, Dst: [4]byte{198, 18, 1, 100},
				SrcMapped: [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 14: 0, 15: 1},
				DstMapped: [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18, 14: 1, 15: 100},
				Proto:     ProtocolTCP, SrcPort: 40000, DstPort: 80, TCPFlags: TCPFlagSYN,
				TOS: 0x10, DF: true, ID: 0x1234, TotalLen: 58}
			if *p != want {
				t.Errorf("got %+v\nwant %+v", *p, want)
			}
		}},
		{"udp", build(t, udp), OK, func(t *testing.T, p *Packet) {
			if p.Proto != ProtocolUDP || p.SrcPort != 5353 || p.DstPort != 53 || p.Payload != 42 || p.TotalLen != 128 || p.DF || p.TCPFlags != 0 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"vlan_tcp", build(t, spec{vlan: true, vlanID: 100, prio: 5, sport: 1, dport: 443, ack: true}), OK, func(t *testing.T, p *Packet) {
			if !p.HasVLAN || p.VLANTCI != 5<<13|100 || p.L3 != 18 || p.L4 != 38 || p.TCPFlags != TCPFlagACK || p.DstPort != 443 {
				t.Errorf("got %+v", *p)
			}
		}},
		{"ip_options_skipped", build(t, spec{ipOpts: routerAlert, sport: 2, dport: 80}), OK, func(t *testing.T, p *Packet) {
			if p.L4 != 14+24 || p.Payload != 14+24+20 {
				t.Errorf("got L4 %d payload %d", p.L4, p.Payload)
			}
		}},
		{"tcp_options", build(t, spec{sport: 3, dport: 80, syn: true, tcpOpts: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}), OK, func(t *testing.T, p *Packet) {
			if p.Payload != 34+24 {
				t.Errorf("payload at %d, want 58", p.Payload)
			}
		}},
		{"ethernet_padding", build(t, spec{udp: true, sport: 9, dport: 9, pad: 100}), OK, func(t *testing.T, p *Packet) {
			// gopacket pads to 60 bytes, then 100 more: the packet ends at 14+28.
			if p.End != 42 || p.TotalLen != 28 {
				t.Errorf("end %d total %d", p.End, p.TotalLen)
			}
		}},
		{"udp_length_shorter_than_payload", edit(t, udp, false, func(b []byte, l3 int) []byte { put16(b, l3+24, 50); return b }), OK, nil},

		{"empty", nil, TruncatedEthernet, nil},
		{"13_bytes", make([]byte, 13), TruncatedEthernet, nil},
		{"vlan_truncated", edit(t, tcp, false, func(b []byte, _ int) []byte { put16(b, 12, 0x8100); return b[:16] }), TruncatedEthernet, nil},

		{"arp", serialize(t, &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC, EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: layers.ARPRequest, SourceHwAddress: testSrcMAC, SourceProtAddress: net.IP{198, 18, 0, 1},
				DstHwAddress: make([]byte, 6), DstProtAddress: net.IP{198, 18, 0, 2}}), NotIPv4, nil},
		{"ipv6_no_next_header", serialize(t, &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC, EthernetType: layers.EthernetTypeIPv6},
			&layers.IPv6{Version: 6, NextHeader: layers.IPProtocolNoNextHeader, HopLimit: 64, SrcIP: net.ParseIP("2001:2::1"), DstIP: net.ParseIP("2001:2::2")}), UnknownNextHeader, nil},
		{"qinq", edit(t, spec{vlan: true}, false, func(b []byte, _ int) []byte { put16(b, 16, 0x8100); return b }), NotIPv4, nil},
		{"ieee802_3_length", edit(t, tcp, false, func(b []byte, _ int) []byte { put16(b, 12, 100); return b }), NotIPv4, nil},
		{"ethertype_only", append(ethMACBytes(t, ethMAC), 0x08, 0x00), TruncatedIP, nil},

		{"truncated_ip", edit(t, tcp, false, func(b []byte, l3 int) []byte { return b[:l3+19] }), TruncatedIP, nil},
		{"ihl_past_frame", edit(t, spec{udp: true}, false, func(b []byte, l3 int) []byte { b[l3] = 0x4f; return b }), TruncatedIP, nil},
		{"bad_version_6", edit(t, tcp, true, func(b []byte, l3 int) []byte { b[l3] = 0x65; return b }), BadVersion, nil},
		{"bad_version_0", edit(t, tcp, true, func(b []byte, l3 int) []byte { b[l3] = 0x05; return b }), BadVersion, nil},
		{"bad_ihl_4", edit(t, tcp, false, func(b []byte, l3 int) []byte { b[l3] = 0x44; return b }), BadIHL, nil},
		{"bad_ihl_0", edit(t, tcp, false, func(b []byte, l3 int) []byte { b[l3] = 0x40; return b }), BadIHL, nil},
		{"total_length_zero", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+2, 0); return b }), BadTotalLength, nil},
		{"total_length_below_ihl", edit(t, spec{ipOpts: routerAlert}, true, func(b []byte, l3 int) []byte { put16(b, l3+2, 20); return b }), BadTotalLength, nil},
		{"total_length_past_frame", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+2, uint16(len(b)-l3+1)); return b }), BadTotalLength, nil},
		{"frame_cut_short", edit(t, tcp, false, func(b []byte, _ int) []byte { return b[:len(b)-1] }), BadTotalLength, nil},
		{"bad_checksum", edit(t, tcp, false, func(b []byte, l3 int) []byte { b[l3+10] ^= 0x01; return b }), BadChecksum, nil},
		{"bad_checksum_options", edit(t, spec{ipOpts: routerAlert}, false, func(b []byte, l3 int) []byte { b[l3+22] ^= 0x80; return b }), BadChecksum, nil},
		{"options_nops", withOpts(t, 1, 1, 1, 1), OK, nil},
		{"options_eol_then_anything", withOpts(t, 0, 0x94, 0xff, 0xff), OK, nil},
		{"options_length_2", withOpts(t, 0x1e, 2, 1, 0), OK, nil},
		{"options_nop_then_fit", withOpts(t, 1, 0x1e, 3, 0), OK, nil},
		{"options_length_0", withOpts(t, 0x94, 0, 0, 0), BadIPOptions, nil},
		{"options_length_1", withOpts(t, 0x94, 1, 0, 0), BadIPOptions, nil},
		{"options_length_past_header", withOpts(t, 0x94, 5, 0, 0), BadIPOptions, nil},
		{"options_second_past_header", withOpts(t, 0x1e, 2, 0x94, 3), BadIPOptions, nil},
		{"options_no_length_byte", withOpts(t, 1, 1, 1, 0x94), BadIPOptions, nil},
		{"options_255", edit(t, spec{ipOpts: routerAlert}, true, func(b []byte, l3 int) []byte { b[l3+21] = 255; return b }), BadIPOptions, nil},
		{"source_0.0.0.0", withSrc(t, 0, 0, 0, 0), MartianSource, nil},
		{"source_0.1.2.3", withSrc(t, 0, 1, 2, 3), MartianSource, nil},
		{"source_127.0.0.1", withSrc(t, 127, 0, 0, 1), MartianSource, nil},
		{"source_127.255.255.255", withSrc(t, 127, 255, 255, 255), MartianSource, nil},
		{"source_224.0.0.1", withSrc(t, 224, 0, 0, 1), MartianSource, nil},
		{"source_239.255.255.255", withSrc(t, 239, 255, 255, 255), MartianSource, nil},
		{"source_240.0.0.1", withSrc(t, 240, 0, 0, 1), MartianSource, nil},
		{"source_255.255.255.255", withSrc(t, 255, 255, 255, 255), MartianSource, nil},
		{"source_1.0.0.0", withSrc(t, 1, 0, 0, 0), OK, nil},
		{"source_126.255.255.255", withSrc(t, 126, 255, 255, 255), OK, nil},
		{"source_128.0.0.0", withSrc(t, 128, 0, 0, 0), OK, nil},
		{"source_223.255.255.255", withSrc(t, 223, 255, 255, 255), OK, nil},
		{"ttl_0", edit(t, tcp, true, func(b []byte, l3 int) []byte { b[l3+8] = 0; return b }), TTLZero, nil},
		{"ttl_1", edit(t, tcp, true, func(b []byte, l3 int) []byte { b[l3+8] = 1; return b }), OK, nil},
		{"ttl_0_vlan_udp", edit(t, spec{vlan: true, udp: true}, true, func(b []byte, l3 int) []byte { b[l3+8] = 0; return b }), TTLZero, nil},
		{"fragment_mf", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+6, 0x2000); return b }), Fragment, nil},
		{"fragment_offset", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+6, 0x0001); return b }), Fragment, nil},
		{"fragment_offset_df", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+6, 0x4100); return b }), Fragment, nil},
		{"reserved_flag_ignored", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+6, 0x8000); return b }), OK, nil},
		{"icmp", serialize(t, &layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC, EthernetType: layers.EthernetTypeIPv4},
			&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{198, 18, 0, 1}, DstIP: net.IP{198, 18, 0, 2}},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), UnknownProtocol, nil},
		{"sctp", edit(t, tcp, true, func(b []byte, l3 int) []byte { b[l3+9] = 132; return b }), UnknownProtocol, nil},
		{"tcp_truncated", edit(t, tcp, true, func(b []byte, l3 int) []byte { put16(b, l3+2, 39); return b }), TruncatedL4, nil},
		{"udp_truncated", edit(t, udp, true, func(b []byte, l3 int) []byte { put16(b, l3+2, 27); return b }), TruncatedL4, nil},
		{"tcp_offset_4", edit(t, tcp, false, func(b []byte, l3 int) []byte { b[l3+32] = 0x40; return b }), BadTCPOffset, nil},
		{"tcp_offset_past_segment", edit(t, spec{}, false, func(b []byte, l3 int) []byte { b[l3+32] = 0xf0; return b }), BadTCPOffset, nil},
		{"udp_length_7", edit(t, udp, false, func(b []byte, l3 int) []byte { put16(b, l3+24, 7); return b }), BadUDPLength, nil},
		{"udp_length_0", edit(t, udp, false, func(b []byte, l3 int) []byte { put16(b, l3+24, 0); return b }), BadUDPLength, nil},
		{"udp_length_past_packet", edit(t, udp, false, func(b []byte, l3 int) []byte { put16(b, l3+24, 109); return b }), BadUDPLength, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			got := Parse(tc.in, &p)
			if got != tc.want {
				t.Fatalf("Parse = %v, want %v", got, tc.want)
			}
			// The fixtures double as a check of the reference model.
			if ref, _ := reference(tc.in); ref != tc.want {
				t.Errorf("reference = %v, want %v", ref, tc.want)
			}
			if tc.check != nil {
				tc.check(t, &p)
			}
		})
	}
}

// withOpts is a TCP segment whose 4 bytes of IPv4 options are o, with a
// valid header checksum.
func withOpts(t *testing.T, o ...byte) []byte {
	return edit(t, spec{ipOpts: routerAlert, sport: 1, dport: 80}, true, func(b []byte, l3 int) []byte {
		copy(b[l3+20:l3+24], o)
		return b
	})
}

// withSrc is a TCP SYN from source a.b.c.d (set after building: build
// takes a zero source for "the default").
func withSrc(t *testing.T, a, b, c, d byte) []byte {
	return edit(t, spec{sport: 1, dport: 80, syn: true}, true, func(f []byte, l3 int) []byte {
		copy(f[l3+12:l3+16], []byte{a, b, c, d})
		return f
	})
}

func ethMACBytes(t *testing.T, e *layers.Ethernet) []byte {
	return append(append([]byte(nil), e.DstMAC...), e.SrcMAC...)
}

// TestParseResetsPacket checks that nothing from a previous frame survives.
func TestParseResetsPacket(t *testing.T) {
	var p Packet
	if r := Parse(build(t, spec{vlan: true, vlanID: 3, sport: 1, dport: 2, syn: true}), &p); r != OK {
		t.Fatal(r)
	}
	if r := Parse(build(t, spec{udp: true, sport: 3, dport: 4}), &p); r != OK {
		t.Fatal(r)
	}
	if p.HasVLAN || p.VLANTCI != 0 || p.TCPFlags != 0 {
		t.Errorf("stale fields: %+v", p)
	}
}

// randomFrame returns a valid frame with random headers.
func randomFrame(t testing.TB, r *rand.Rand) []byte {
	s := spec{
		vlan: r.IntN(3) == 0, vlanID: uint16(r.IntN(4095)), prio: uint8(r.IntN(8)),
		udp: r.IntN(2) == 0, tos: uint8(r.IntN(256)), df: r.IntN(2) == 0, id: uint16(r.Uint32()),
		ttl:   uint8(1 + r.IntN(255)),
		src:   [4]byte{198, 18 + uint8(r.IntN(2)), uint8(r.IntN(256)), uint8(r.IntN(256))},
		dst:   [4]byte{198, 18 + uint8(r.IntN(2)), uint8(r.IntN(256)), uint8(r.IntN(256))},
		sport: uint16(r.Uint32()), dport: uint16(r.Uint32()),
		syn: r.IntN(2) == 0, ack: r.IntN(2) == 0,
		payload: make([]byte, r.IntN(200)),
		pad:     r.IntN(3) * r.IntN(20),
	}
	if r.IntN(4) == 0 {
		s.ipOpts = routerAlert
	}
	if r.IntN(4) == 0 {
		s.tcpOpts = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}
	}
	for i := range s.payload {
		s.payload[i] = byte(r.Uint32())
	}
	return build(t, s)
}

// corrupt damages f in one of the ways a wire or a bad sender would, and
// sometimes repairs the IPv4 checksum so that later checks get exercised.
func corrupt(r *rand.Rand, f []byte) []byte {
	switch r.IntN(7) {
	case 0: // truncate
		return f[:r.IntN(len(f)+1)]
	case 1: // flip bits in the headers
		for range 1 + r.IntN(3) {
			i := r.IntN(min(len(f), 70))
			f[i] ^= byte(1 << r.IntN(8))
		}
	case 2: // a random header byte
		f[r.IntN(min(len(f), 70))] = byte(r.Uint32())
	case 3: // a field of interest set to a random value
		l3 := l3Of(f)
		at := []int{12, l3, l3 + 2, l3 + 6, l3 + 9, l3 + 20 + 4, l3 + 20 + 12}[r.IntN(7)]
		if at+1 < len(f) {
			f[at], f[at+1] = byte(r.Uint32()), byte(r.Uint32())
		}
	case 4: // random IPv4 option bytes, mostly small values
		if l3 := l3Of(f); len(f) > l3 {
			hl := int(f[l3]&0x0f) * 4
			for i := l3 + 20; i < l3+hl && i < len(f); i++ {
				f[i] = byte(r.IntN(8))
				if r.IntN(4) == 0 {
					f[i] = byte(r.Uint32())
				}
			}
		}
	case 5: // a source address near or in a martian block
		if l3 := l3Of(f); len(f) > l3+12 {
			f[l3+12] = []byte{0, 1, 126, 127, 128, 223, 224, 239, 240, 255}[r.IntN(10)]
		}
	case 6: // TTL 0 or 1
		if l3 := l3Of(f); len(f) > l3+8 {
			f[l3+8] = byte(r.IntN(2))
		}
	}
	if r.IntN(2) == 0 {
		fixIPChecksum(f, l3Of(f))
	}
	return f
}

// l3Of is where the IPv4 header of a test frame starts.
func l3Of(f []byte) int {
	if len(f) >= 14 && binary.BigEndian.Uint16(f[12:]) == 0x8100 {
		return 18
	}
	return 14
}

// TestParseDifferential compares Parse with the gopacket reference model on
// random valid frames and random corruptions of them.
func TestParseDifferential(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	counts := make([]int, NumReasons)
	for i := range 20000 {
		f := randomFrame(t, r)
		if i%2 == 1 {
			f = corrupt(r, f)
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
	// The corruptions must reach deep checks, or the comparison proves little.
	for _, r := range []Reason{OK, TruncatedEthernet, TruncatedIP, BadTotalLength, BadChecksum, Fragment, BadVersion, BadIHL, BadIPOptions, MartianSource, TTLZero} {
		if counts[r] == 0 {
			t.Errorf("no frame hit %v", r)
		}
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := range Reason(NumReasons) {
		s := r.String()
		if s == "" || s == "unknown_reason" || seen[s] {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	if OK.String() != "ok" || Fragment.String() != "fragment" || BadTCPOffset.String() != "bad_tcp_offset" ||
		BadIPOptions.String() != "bad_ip_options" || MartianSource.String() != "martian_source" || TTLZero.String() != "ttl_zero" {
		t.Error("metric names changed")
	}
	if s := Reason(NumReasons).String(); s != "unknown_reason" {
		t.Errorf("out of range: %q", s)
	}
}

func TestParseAllocs(t *testing.T) {
	frames := [][]byte{
		build(t, spec{sport: 1, dport: 80, syn: true}),
		build(t, spec{udp: true, vlan: true, ipOpts: routerAlert}),
		build(t, spec{})[:30],
		withOpts(t, 1, 0x1e, 3, 0),
		withOpts(t, 0x94, 5, 0, 0),
		withSrc(t, 255, 255, 255, 255),
	}
	var p Packet
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { Parse(f, &p) }); n != 0 {
			t.Errorf("Parse allocates %v times", n)
		}
	}
}

// BenchmarkParse parses IPv4 and IPv6 frames of the same shapes, so that
// one run gives the IPv6 cost as a ratio to IPv4's (tcp6 against tcp, and
// so on); tcp6_ext adds a hop-by-hop and a destination options header.
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name  string
		frame []byte
	}{
		{"frame=tcp", build(b, spec{sport: 40000, dport: 80, ack: true, payload: make([]byte, 1400)})},
		{"frame=udp64", build(b, spec{udp: true, sport: 1, dport: 53})},
		{"frame=vlan_tcp", build(b, spec{vlan: true, sport: 1, dport: 80})},
		{"frame=ip_options", build(b, spec{ipOpts: routerAlert, sport: 1, dport: 80})},
		{"frame=tcp6", build6(b, spec6{sport: 40000, dport: 80, ack: true, payload: make([]byte, 1400)})},
		{"frame=udp6", build6(b, spec6{proto: ProtocolUDP, sport: 1, dport: 53})},
		{"frame=vlan_tcp6", build6(b, spec6{vlan: true, sport: 1, dport: 80})},
		{"frame=tcp6_ext", build6(b, spec6{sport: 1, dport: 80, exts: []ext6{{ProtocolHopByHop, raBody}, {ProtocolDestOpts, pad6}}})},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var p Packet
			for b.Loop() {
				if Parse(c.frame, &p) != OK {
					b.Fatal("not ok")
				}
			}
		})
	}
}
