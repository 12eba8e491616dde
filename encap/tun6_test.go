package encap

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	clientIP6   = netip.MustParseAddr("2001:2::10").As16()
	vip6        = netip.MustParseAddr("2001:2:0:1::100").As16()
	directorIP6 = netip.MustParseAddr("2001:2:0:2::1").As16()
	rsIP6       = netip.MustParseAddr("2001:2:0:2::3").As16()
)

// spec6 describes an IPv6 client frame for build6.
type spec6 struct {
	vlan    bool
	vlanID  uint16
	tc      uint8
	flow    uint32
	hop     uint8
	dstOpts bool // a destination options header before TCP
	payload int
}

// build6 serializes a client-to-VIP IPv6 TCP frame with gopacket.
func build6(t testing.TB, s spec6) []byte {
	t.Helper()
	ls := []gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: clientMAC[:], DstMAC: directorMAC[:]}}
	if s.vlan {
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: s.vlanID, Priority: 2})
	}
	if s.hop == 0 {
		s.hop = 61
	}
	ip := &layers.IPv6{TrafficClass: s.tc, FlowLabel: s.flow, HopLimit: s.hop, SrcIP: clientIP6[:], DstIP: vip6[:]}
	ls = append(ls, ip)
	if s.dstOpts {
		ip.NextHeader = layers.IPProtocolIPv6Destination
		opt := &layers.IPv6DestinationOption{OptionType: 0x1e, OptionData: []byte{1, 2, 3, 4}}
		ls = append(ls, &layers.IPv6Destination{Options: []*layers.IPv6DestinationOption{opt}})
		ls[len(ls)-1].(*layers.IPv6Destination).NextHeader = layers.IPProtocolTCP
	}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 77, ACK: true, PSH: true, Ack: 88, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	pl := make([]byte, s.payload)
	for i := range pl {
		pl[i] = byte(i*13 + 1)
	}
	return testsupport.Build(t, append(ls, tcp, gopacket.Payload(pl))...)
}

// inFrame puts frame in a buffer with headroom bytes before it and room
// after, as a UMEM chunk holds it.
func inFrame(frame []byte, headroom int) []byte {
	buf := make([]byte, headroom+len(frame)+64)
	copy(buf[headroom:], frame)
	return buf
}

// tunCase is one family combination: its encapsulation and what the outer
// header must be.
type tunCase struct {
	name     string
	inner6   bool
	outer6   bool
	overhead int
	next     layers.IPProtocol
	run      func(buf []byte, off, n int, p *header.Packet) (int, int, bool)
}

var tunCases = []tunCase{
	{"6in6", true, true, 40, layers.IPProtocolIPv6, func(buf []byte, off, n int, p *header.Packet) (int, int, bool) {
		return IP6IP6(buf, off, n, p, directorIP6, rsIP6, egressMAC, rsMAC)
	}},
	{"4in6", false, true, 40, layers.IPProtocolIPv4, func(buf []byte, off, n int, p *header.Packet) (int, int, bool) {
		return IP4IP6(buf, off, n, p, directorIP6, rsIP6, egressMAC, rsMAC)
	}},
	{"6in4", true, false, 20, layers.IPProtocolIPv6, func(buf []byte, off, n int, p *header.Packet) (int, int, bool) {
		return IP6IP4(buf, off, n, p, directorIP, rsIP, 0x4242, egressMAC, rsMAC)
	}},
}

// TestTunnels6 encapsulates IPv6 and IPv4 frames in every family
// combination, with and without a VLAN tag, extension headers, Ethernet
// padding and headroom, and checks the result field by field with gopacket.
func TestTunnels6(t *testing.T) {
	for _, c := range tunCases {
		for _, vlan := range []bool{false, true} {
			for _, room := range []int{headroom, 10} {
				var orig []byte
				if c.inner6 {
					orig = build6(t, spec6{vlan: vlan, vlanID: 7, tc: 0xb8, flow: 0xabcde, hop: 33, dstOpts: vlan, payload: 100})
				} else {
					orig = build(t, spec{vlan: vlan, vlanID: 7, tos: 0xb8, df: true, id: 9, payload: 3})
				}
				p := parse(t, orig)
				buf := inFrame(orig, room)
				off, n, ok := c.run(buf, room, len(orig), &p)
				if !ok {
					t.Fatalf("%s vlan %v headroom %d: refused", c.name, vlan, room)
				}
				if room >= c.overhead && off != room-c.overhead {
					t.Errorf("%s: frame starts at %d, want %d (no copy)", c.name, off, room-c.overhead)
				}
				checkTunnel(t, c, buf[off:off+n], orig, p, vlan)
			}
		}
	}
}

func checkTunnel(t *testing.T, c tunCase, out, orig []byte, p header.Packet, vlan bool) {
	t.Helper()
	inner := orig[p.L3:p.End]
	l2 := p.L3
	if len(out) != l2+c.overhead+len(inner) {
		t.Fatalf("%s: frame %d bytes, want %d", c.name, len(out), l2+c.overhead+len(inner))
	}
	if !bytes.Equal(out[l2+c.overhead:], inner) {
		t.Fatalf("%s: inner packet changed", c.name)
	}
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("%s: gopacket: %v", c.name, el.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, rsMAC[:]) || !bytes.Equal(eth.SrcMAC, egressMAC[:]) {
		t.Errorf("%s: MACs dst %v src %v", c.name, eth.DstMAC, eth.SrcMAC)
	}
	wantET := layers.EthernetTypeIPv4
	if c.outer6 {
		wantET = layers.EthernetTypeIPv6
	}
	if vlan {
		q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if q == nil || q.VLANIdentifier != 7 || q.Priority != 2 || q.Type != wantET {
			t.Errorf("%s: VLAN tag: %+v", c.name, q)
		}
	} else if eth.EthernetType != wantET {
		t.Errorf("%s: ethertype %v, want %v", c.name, eth.EthernetType, wantET)
	}
	// What the outer header copies from the inner one.
	var tos, ttl uint8
	if c.inner6 {
		tos, ttl = p.TOS, orig[p.L3+7]
	} else {
		tos, ttl = p.TOS, orig[p.L3+8]
	}
	if c.outer6 {
		var o *layers.IPv6
		for _, l := range pkt.Layers() {
			if ip, ok := l.(*layers.IPv6); ok {
				o = ip
				break
			}
		}
		if o == nil || o.Version != 6 || o.TrafficClass != tos || o.FlowLabel != 0 || int(o.Length) != len(inner) ||
			o.NextHeader != c.next || o.HopLimit != ttl || !o.SrcIP.Equal(directorIP6[:]) || !o.DstIP.Equal(rsIP6[:]) {
			t.Errorf("%s: outer header %+v", c.name, o)
		}
	} else {
		o, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if o == nil || o.IHL != 5 || o.TOS != tos || int(o.Length) != len(inner)+20 || o.Id != 0x4242 || o.Flags != 0 ||
			o.FragOffset != 0 || o.TTL != ttl || o.Protocol != c.next || !o.SrcIP.Equal(directorIP[:]) || !o.DstIP.Equal(rsIP[:]) {
			t.Errorf("%s: outer header %+v", c.name, o)
		}
		if o != nil && (sum16(o.Contents) != 0xffff || o.Checksum != gopacketIPChecksum(t, o)) {
			t.Errorf("%s: outer checksum %#04x does not verify", c.name, o.Checksum)
		}
	}
	// The result parses; its next header is the tunnel, not TCP.
	var q header.Packet
	if r := header.Parse(out, &q); c.outer6 && r != header.UnknownNextHeader || !c.outer6 && r != header.UnknownProtocol {
		t.Errorf("%s: reparse = %v", c.name, r)
	}
}

// TestTunnels6Refuse: a frame of the wrong family, a Packet that does not
// describe the frame, or no room leaves buf unchanged.
func TestTunnels6Refuse(t *testing.T) {
	v6 := build6(t, spec6{payload: 10})
	v4 := build(t, spec{payload: 10})
	p6, p4 := parse(t, v6), parse(t, v4)
	for _, c := range tunCases {
		frame, p, other := v4, p4, p6
		if c.inner6 {
			frame, p, other = v6, p6, p4
		}
		bad := p
		bad.End++
		short := p
		short.TotalLen--
		for name, tc := range map[string]struct {
			buf []byte
			off int
			n   int
			p   *header.Packet
		}{
			"wrong family": {inFrame(frame, headroom), headroom, len(frame), &other},
			"nil packet":   {inFrame(frame, headroom), headroom, len(frame), nil},
			"end past n":   {inFrame(frame, headroom), headroom, len(frame), &bad},
			"length":       {inFrame(frame, headroom), headroom, len(frame), &short},
			"n past buf":   {inFrame(frame, headroom), headroom, len(frame) + 100, &p},
			"no room":      {append(make([]byte, 2), frame...), 2, len(frame), &p},
		} {
			before := append([]byte(nil), tc.buf...)
			if off, n, ok := c.run(tc.buf, tc.off, tc.n, tc.p); ok || off != tc.off || n != tc.n {
				t.Errorf("%s %s: accepted (%d, %d)", c.name, name, off, n)
			}
			if !bytes.Equal(tc.buf, before) {
				t.Errorf("%s %s: buffer changed", c.name, name)
			}
		}
	}
}

func TestTunnels6Allocs(t *testing.T) {
	for _, c := range tunCases {
		frame := build(t, spec{payload: 100})
		if c.inner6 {
			frame = build6(t, spec6{payload: 100})
		}
		p := parse(t, frame)
		buf := inFrame(frame, headroom)
		if n := testing.AllocsPerRun(100, func() {
			copy(buf[headroom:], frame)
			if _, _, ok := c.run(buf, headroom, len(frame), &p); !ok {
				t.Fatal("refused")
			}
		}); n != 0 {
			t.Errorf("%s allocates %v times", c.name, n)
		}
	}
}

// TestPacketTooBig builds the reply to a too-big IPv6 packet and checks it
// with gopacket and an independent checksum over the pseudo-header.
func TestPacketTooBig(t *testing.T) {
	for _, vlan := range []bool{false, true} {
		for _, size := range []int{100, 1400, 3000} {
			in := build6(t, spec6{vlan: vlan, vlanID: 9, tc: 0x20, payload: size, dstOpts: true})
			p := parse(t, in)
			out := make([]byte, 2000)
			n := PacketTooBig(out, in, &p, 1460, directorMAC, clientMAC, p.DstMapped)
			if n == 0 {
				t.Fatalf("vlan %v size %d: not built", vlan, size)
			}
			out = out[:n]
			quote := min(p.End-p.L3, 1280-48)
			if n != p.L3+48+quote || n-p.L3 > 1280 {
				t.Errorf("frame %d bytes, want %d", n, p.L3+48+quote)
			}
			pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
			eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if !bytes.Equal(eth.SrcMAC, directorMAC[:]) || !bytes.Equal(eth.DstMAC, clientMAC[:]) {
				t.Errorf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
			}
			if q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); vlan && (q == nil || q.VLANIdentifier != 9 || q.Priority != 2) {
				t.Errorf("VLAN tag %+v", q)
			}
			ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if ip == nil || ip.TrafficClass != 0 || ip.FlowLabel != 0 || ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolICMPv6 ||
				!ip.SrcIP.Equal(vip6[:]) || !ip.DstIP.Equal(clientIP6[:]) || int(ip.Length) != 8+quote {
				t.Fatalf("IPv6 header %+v", ip)
			}
			icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			if icmp == nil || icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0) {
				t.Fatalf("ICMPv6 %+v", icmp)
			}
			msg := out[p.L3+40:]
			if mtu := binary.BigEndian.Uint32(msg[4:8]); mtu != 1460 {
				t.Errorf("MTU %d", mtu)
			}
			if !bytes.Equal(msg[8:], in[p.L3:p.L3+quote]) {
				t.Error("quote is not the start of the offending packet")
			}
			var ph []byte
			ph = append(append(append(ph, vip6[:]...), clientIP6[:]...), 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, 58)
			if s := sum16(append(ph, msg...)); s != 0xffff {
				t.Errorf("ICMPv6 checksum does not verify: sum %#04x", s)
			}
			// gopacket computes the same checksum from the same fields.
			re := &layers.ICMPv6{TypeCode: icmp.TypeCode}
			_ = re.SetNetworkLayerForChecksum(&layers.IPv6{SrcIP: net.IP(vip6[:]), DstIP: net.IP(clientIP6[:]), NextHeader: layers.IPProtocolICMPv6})
			sb := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true}, re, gopacket.Payload(msg[4:])); err != nil {
				t.Fatal(err)
			}
			if re.Checksum != icmp.Checksum {
				t.Errorf("checksum %#04x, gopacket %#04x", icmp.Checksum, re.Checksum)
			}
		}
	}
}

func TestPacketTooBigRefuses(t *testing.T) {
	in := build6(t, spec6{payload: 1400})
	p := parse(t, in)
	v4 := build(t, spec{payload: 10})
	p4 := parse(t, v4)
	unspec := p
	unspec.SrcMapped = [16]byte{}
	out := make([]byte, 2000)
	cases := map[string]int{
		"mtu below 1280":  PacketTooBig(out, in, &p, 1279, directorMAC, clientMAC, vip6),
		"mtu above 65535": PacketTooBig(out, in, &p, 70000, directorMAC, clientMAC, vip6),
		"ipv4 packet":     PacketTooBig(out, v4, &p4, 1400, directorMAC, clientMAC, vip6),
		"unspecified src": PacketTooBig(out, in, &unspec, 1400, directorMAC, clientMAC, vip6),
		"out too small":   PacketTooBig(out[:100], in, &p, 1400, directorMAC, clientMAC, vip6),
		"in cut short":    PacketTooBig(out, in[:100], &p, 1400, directorMAC, clientMAC, vip6),
		"nil packet":      PacketTooBig(out, in, nil, 1400, directorMAC, clientMAC, vip6),
	}
	for name, n := range cases {
		if n != 0 {
			t.Errorf("%s: built %d bytes", name, n)
		}
	}
	if PacketTooBig(out, in, &p, 1280, directorMAC, clientMAC, vip6) == 0 {
		t.Error("mtu 1280 refused")
	}
}

func TestNeedsPacketTooBig(t *testing.T) {
	in := build6(t, spec6{payload: 1400})
	p := parse(t, in)
	total := int(p.TotalLen)
	for _, c := range []struct {
		mtu, overhead int
		want          bool
	}{{total, 0, false}, {total - 1, 0, true}, {total + 40, 40, false}, {total + 39, 40, true}, {total + 20, 20, false}} {
		if got := NeedsPacketTooBig(&p, c.mtu, c.overhead); got != c.want {
			t.Errorf("mtu %d overhead %d: %v", c.mtu, c.overhead, got)
		}
	}
	p4 := parse(t, build(t, spec{payload: 1400, df: true}))
	if NeedsPacketTooBig(&p4, 100, 0) || NeedsPacketTooBig(nil, 100, 0) {
		t.Error("an IPv4 packet needs Packet Too Big")
	}
}

func TestPacketTooBigAllocs(t *testing.T) {
	in := build6(t, spec6{payload: 1400})
	p := parse(t, in)
	out := make([]byte, 2000)
	if n := testing.AllocsPerRun(100, func() {
		if PacketTooBig(out, in, &p, 1400, directorMAC, clientMAC, vip6) == 0 {
			t.Fatal("not built")
		}
	}); n != 0 {
		t.Errorf("PacketTooBig allocates %v times", n)
	}
}

// TestIPv4FunctionsRefuseIPv6: now that Parse returns IPv6 packets, the
// IPv4-only functions refuse them instead of treating their header as IPv4:
// IPIP would have wrapped an IPv6 packet as protocol 4, NeedsFrag would
// have asked for an ICMPv4 reply.
func TestIPv4FunctionsRefuseIPv6(t *testing.T) {
	frame := build6(t, spec6{payload: 1000})
	p := parse(t, frame)
	second := make([]byte, 2000)
	buf := inFrame(frame, headroom)
	before := bytes.Clone(buf)
	if _, _, ok := IPIP(buf, headroom, len(frame), &p, directorIP, rsIP, egressMAC, rsMAC); ok || !bytes.Equal(buf, before) {
		t.Error("IPIP took an IPv6 packet")
	}
	if NeedsFrag(&p, 600) {
		t.Error("NeedsFrag for an IPv6 packet")
	}
	if n := FragNeeded(make([]byte, 1600), frame, &p, 600, 1500, directorMAC, clientMAC, vip); n != 0 {
		t.Error("FragNeeded built a reply to an IPv6 packet")
	}
	p.DF = false // the fragmenters must not rely on IPv6's DF to refuse
	if _, _, _, ok := FragmentIPIP(buf, headroom, len(frame), &p, 600, directorIP, rsIP, egressMAC, rsMAC, second); ok || !bytes.Equal(buf, before) {
		t.Error("FragmentIPIP took an IPv6 packet")
	}
	if _, _, ok := FragmentDR(buf, headroom, len(frame), &p, 600, egressMAC, rsMAC, second); ok || !bytes.Equal(buf, before) {
		t.Error("FragmentDR took an IPv6 packet")
	}
}

// FuzzTunnels6 feeds arbitrary frames, offsets and buffer sizes to the IPv6
// encapsulations and PacketTooBig, with the Packet from Parse. They must
// never panic; a refusal must leave buf alone; an accepted encapsulation
// carries the original IP packet unchanged behind an outer header whose
// length field counts it.
func FuzzTunnels6(f *testing.F) {
	f.Add(build6(f, spec6{payload: 10}), uint8(40), uint8(0), uint8(0))
	f.Add(build6(f, spec6{vlan: true, dstOpts: true}), uint8(3), uint8(30), uint8(1))
	f.Add(build(f, spec{payload: 10}), uint8(60), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, frame []byte, off, tail, which uint8) {
		var p header.Packet
		if header.Parse(frame, &p) != header.OK {
			return
		}
		buf := make([]byte, int(off)+len(frame)+int(tail))
		copy(buf[off:], frame)
		before := bytes.Clone(buf)
		c := tunCases[int(which)%len(tunCases)]
		newOff, newN, ok := c.run(buf, int(off), len(frame), &p)
		if !ok {
			if !bytes.Equal(buf, before) {
				t.Fatal("refused but wrote to buf")
			}
		} else {
			out := buf[newOff : newOff+newN]
			if !bytes.Equal(out[p.L3+c.overhead:], frame[p.L3:p.End]) {
				t.Fatalf("%s: inner packet changed", c.name)
			}
			if c.outer6 && int(header.IPv6(out[p.L3:]).PayloadLength()) != p.End-p.L3 {
				t.Fatalf("%s: payload length", c.name)
			}
			if !c.outer6 && (!header.IPv4(out[p.L3:]).IsChecksumValid() || int(header.IPv4(out[p.L3:]).TotalLength()) != newN-p.L3) {
				t.Fatalf("%s: outer IPv4 header % x", c.name, out[p.L3:p.L3+20])
			}
		}
		out := make([]byte, int(tail)*8)
		if n := PacketTooBig(out, frame, &p, 1280+int(off), directorMAC, clientMAC, vip6); n > len(out) {
			t.Fatalf("PacketTooBig returned %d for a %d-byte out", n, len(out))
		}
		NeedsPacketTooBig(&p, 1280+int(off), int(tail))
	})
}
