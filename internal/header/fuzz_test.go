package header

import "testing"

// FuzzParse checks that Parse never panics, that it agrees with the gopacket
// reference model, and that an OK Packet only points inside the frame.
// The committed corpus in testdata/fuzz/FuzzParse covers each protocol shape.
func FuzzParse(f *testing.F) {
	f.Add(build(f, spec{sport: 1, dport: 80, syn: true}))
	f.Add(build(f, spec{udp: true, vlan: true, ipOpts: routerAlert, payload: []byte("x")}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p Packet
		got := Parse(frame, &p)
		if int(got) >= NumReasons {
			t.Fatalf("reason %d out of range", got)
		}
		want, wp := reference(frame)
		if got != want {
			t.Fatalf("Parse = %v, reference = %v", got, want)
		}
		if got != OK {
			return
		}
		if p != wp {
			t.Fatalf("Parse %+v\nreference %+v", p, wp)
		}
		if !(p.L3 < p.L4 && p.L4 < p.Payload && p.Payload <= p.End && p.End <= len(frame)) {
			t.Fatalf("offsets out of order: %+v, frame %d bytes", p, len(frame))
		}
		if !p.IPv4(frame).IsChecksumValid() {
			t.Fatal("OK with an invalid IPv4 checksum")
		}
	})
}

// FuzzParseIPv6 is FuzzParse seeded with IPv6 frames: extension header
// chains, hop-by-hop options, each upper layer and an 802.1Q tag.
func FuzzParseIPv6(f *testing.F) {
	f.Add(build6(f, spec6{sport: 1, dport: 80, syn: true}))
	f.Add(build6(f, spec6{proto: ProtocolUDP, vlan: true, payload: []byte("x"),
		exts: []ext6{{ProtocolHopByHop, raBody}, {ProtocolDestOpts, pad6}, {ProtocolRouting, routingBody}}}))
	f.Add(build6(f, spec6{proto: ProtocolICMPv6, icmpType: 128, exts: []ext6{hbh(0x1e, 1, 0, IPv6OptPadN, 0)}}))
	f.Add(build6(f, spec6{exts: []ext6{{ProtocolDestOpts, pad6}, {ProtocolFragment, pad6}}}))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p Packet
		got := Parse(frame, &p)
		if int(got) >= NumReasons {
			t.Fatalf("reason %d out of range", got)
		}
		want, wp := reference(frame)
		if got != want {
			t.Fatalf("Parse = %v, reference = %v", got, want)
		}
		if got != OK {
			return
		}
		if p != wp {
			t.Fatalf("Parse %+v\nreference %+v", p, wp)
		}
		if !(p.L3 < p.L4 && p.L4 < p.Payload && p.Payload <= p.End && p.End <= len(frame)) {
			t.Fatalf("offsets out of order: %+v, frame %d bytes", p, len(frame))
		}
		if p.IPv6 && p.End-p.L3 != int(p.TotalLen) {
			t.Fatalf("IPv6 total %d, header and payload %d", p.TotalLen, p.End-p.L3)
		}
	})
}
