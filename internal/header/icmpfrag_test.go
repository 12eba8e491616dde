package header

import (
	"encoding/binary"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// icmpFrame is an ICMP error of type typ from a router to dst quoting a
// TCP reply from dst:80 to 198.18.1.100:40000, cut after cut bytes of the
// quoted TCP header.
func icmpFrame(t testing.TB, typ uint8, cut int) []byte {
	t.Helper()
	q := gopacket.NewSerializeBuffer()
	qip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: []byte{198, 19, 0, 1}, DstIP: []byte{198, 18, 1, 100}}
	tcp := &layers.TCP{SrcPort: 80, DstPort: 40000, ACK: true}
	_ = tcp.SetNetworkLayerForChecksum(qip)
	if err := gopacket.SerializeLayers(q, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, qip, tcp, gopacket.Payload(make([]byte, 1000))); err != nil {
		t.Fatal(err)
	}
	quoted := q.Bytes()[:20+cut]
	b := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: testSrcMAC, DstMAC: testDstMAC, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: []byte{198, 18, 5, 1}, DstIP: []byte{198, 19, 0, 1}},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 4), Seq: 1400}, gopacket.Payload(quoted))
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseICMPError(t *testing.T) {
	for _, c := range []struct {
		name string
		typ  uint8
		cut  int
		want Reason
	}{
		{"frag needed", 3, 8, OK},
		{"source quench", 4, 8, OK},
		{"time exceeded", 11, 8, OK},
		{"ports only", 3, 4, OK},
		{"parameter problem", 12, 8, ICMPNotError},
		{"echo reply", 0, 8, ICMPNotError},
		{"no ports", 3, 3, ICMPTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := icmpFrame(t, c.typ, c.cut)
			var p Packet
			if r := Parse(f, &p); r != UnknownProtocol || p.Proto != ProtocolICMP {
				t.Fatalf("Parse: %v, proto %d", r, p.Proto)
			}
			var e ICMPError
			if r := ParseICMPError(f, &p, &e); r != c.want {
				t.Fatalf("ParseICMPError: %v, want %v", r, c.want)
			}
			if c.want != OK {
				return
			}
			want := ICMPError{Type: c.typ, Code: 4, L3: 14 + 20 + 8, Src: [4]byte{198, 19, 0, 1}, Dst: [4]byte{198, 18, 1, 100},
				Proto: ProtocolTCP, SrcPort: 80, DstPort: 40000}
			if e != want {
				t.Fatalf("got %+v, want %+v", e, want)
			}
		})
	}
}

// FuzzParseICMPError: ParseICMPError never panics, and what it accepts
// agrees with gopacket's reading of the same bytes: an ICMPv4 error whose
// payload starts with the quoted IPv4 header and ports it reports.
func FuzzParseICMPError(f *testing.F) {
	for _, typ := range []uint8{3, 4, 11, 12} {
		f.Add(icmpFrame(f, typ, 8))
	}
	f.Add(icmpFrame(f, 3, 2))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p Packet
		if Parse(frame, &p) != UnknownProtocol || p.Proto != ProtocolICMP {
			return
		}
		var e ICMPError
		r := ParseICMPError(frame, &p, &e)
		if int(r) >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != OK {
			return
		}
		pkt := gopacket.NewPacket(frame[:p.End], layers.LayerTypeEthernet, gopacket.NoCopy)
		ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ic == nil || ic.TypeCode.Type() != e.Type || ic.TypeCode.Code() != e.Code || !IsICMPError(e.Type) {
			t.Fatalf("gopacket reads %v, ParseICMPError %+v", ic, e)
		}
		q := ic.Payload
		if len(q) < 20 || e.L3 != p.L4+8 || [4]byte(q[12:16]) != e.Src || [4]byte(q[16:20]) != e.Dst || q[9] != e.Proto {
			t.Fatalf("quoted header %x, ParseICMPError %+v", q, e)
		}
		hl := int(q[0]&0x0f) * 4
		if binary.BigEndian.Uint16(q[hl:]) != e.SrcPort || binary.BigEndian.Uint16(q[hl+2:]) != e.DstPort {
			t.Fatalf("quoted ports %x, ParseICMPError %+v", q[hl:hl+4], e)
		}
		if Checksum(frame[p.L4:p.End], 0) != 0xffff {
			t.Fatal("OK with a bad ICMP checksum")
		}
	})
}

// fragment returns frame with its IPv4 flags/offset word set to ff.
func fragment(frame []byte, ff uint16) []byte {
	f := append([]byte(nil), frame...)
	ip := IPv4(f[14:])
	ip.SetFlagsFragment(ff)
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	return f
}

func TestParseFragment(t *testing.T) {
	tcp := build(t, spec{sport: 1234, dport: 80, syn: true, payload: make([]byte, 100)})
	udp := build(t, spec{udp: true, sport: 1234, dport: 53, payload: make([]byte, 100)})
	for _, c := range []struct {
		name      string
		frame     []byte
		first     bool
		want      Reason
		dport     uint16
		udpLength uint16 // rewrite the UDP length (the whole datagram's)
	}{
		{"first tcp fragment", fragment(tcp, IPv4FlagMF), true, OK, 80, 0},
		{"first udp fragment", fragment(udp, IPv4FlagMF), true, OK, 53, 0},
		{"first udp fragment of a longer datagram", fragment(udp, IPv4FlagMF), true, OK, 53, 3008},
		{"later fragment", fragment(tcp, 185), false, OK, 0, 0},
		{"last fragment", fragment(udp, 3), false, OK, 0, 0},
		{"udp length below 8", fragment(udp, IPv4FlagMF), true, BadUDPLength, 0, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.frame
			if c.udpLength != 0 {
				binary.BigEndian.PutUint16(f[14+20+4:], c.udpLength)
			}
			var p Packet
			if r := Parse(f, &p); r != Fragment {
				t.Fatalf("Parse: %v", r)
			}
			first, r := ParseFragment(f, &p)
			if first != c.first || r != c.want {
				t.Fatalf("ParseFragment: first %v, %v; want %v, %v", first, r, c.first, c.want)
			}
			if r == OK && p.DstPort != c.dport {
				t.Fatalf("dport %d, want %d", p.DstPort, c.dport)
			}
		})
	}
	// A first fragment that cuts the TCP header (RFC 1858's tiny fragment).
	short := fragment(tcp, IPv4FlagMF)
	IPv4(short[14:]).SetTotalLength(20 + 16)
	ip := IPv4(short[14:])
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	var p Packet
	if r := Parse(short[:14+36], &p); r != Fragment {
		t.Fatalf("Parse: %v", r)
	}
	if first, r := ParseFragment(short[:14+36], &p); !first || r != TruncatedL4 {
		t.Fatalf("tiny first fragment: %v, %v", first, r)
	}
}

// FuzzParseFragment: ParseFragment never panics; a first fragment it
// accepts has the ports gopacket reads, a later one has none.
func FuzzParseFragment(f *testing.F) {
	f.Add(fragment(build(f, spec{sport: 1, dport: 80, syn: true}), IPv4FlagMF))
	f.Add(fragment(build(f, spec{udp: true, sport: 1, dport: 53, payload: []byte("xxxxxxxx")}), IPv4FlagMF))
	f.Add(fragment(build(f, spec{udp: true, payload: []byte("xxxxxxxx")}), 1))
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p Packet
		if Parse(frame, &p) != Fragment {
			return
		}
		first, r := ParseFragment(frame, &p)
		if int(r) >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != OK {
			return
		}
		if !first {
			if p.SrcPort != 0 || p.DstPort != 0 || IPv4(frame[p.L3:]).FragmentOffset() == 0 {
				t.Fatalf("later fragment %+v", p)
			}
			return
		}
		if !(p.L4 < p.Payload && p.Payload <= p.End && p.End <= len(frame)) {
			t.Fatalf("offsets out of order: %+v", p)
		}
		if got := [2]uint16{binary.BigEndian.Uint16(frame[p.L4:]), binary.BigEndian.Uint16(frame[p.L4+2:])}; got != [2]uint16{p.SrcPort, p.DstPort} {
			t.Fatalf("ports %v, ParseFragment %d %d", got, p.SrcPort, p.DstPort)
		}
	})
}
