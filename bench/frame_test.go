package bench

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var testFrame = Frame{
	SrcMAC: [6]byte{0x02, 0, 0, 0, 0, 1}, DstMAC: [6]byte{0x02, 0, 0, 0, 0, 2},
	Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.19.0.1"),
	SrcPort: 1024, DstPort: 9, Len: MinFrameLen,
}

// decode parses b with gopacket and checks both checksums against ones
// gopacket computes itself.
func decode(t *testing.T, b []byte) (*layers.Ethernet, *layers.IPv4, *layers.UDP) {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("gopacket found %v, want Ethernet/IPv4/UDP", pkt.Layers())
	}
	// Re-serialise with computed checksums and compare the fields.
	ip2, udp2 := *ip, *udp
	buf := gopacket.NewSerializeBuffer()
	udp2.SetNetworkLayerForChecksum(&ip2)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		&ip2, &udp2, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	want := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	wip := want.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	wudp := want.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip.Checksum != wip.Checksum {
		t.Errorf("ipv4 checksum %#04x, gopacket computes %#04x", ip.Checksum, wip.Checksum)
	}
	if udp.Checksum != wudp.Checksum {
		t.Errorf("udp checksum %#04x, gopacket computes %#04x", udp.Checksum, wudp.Checksum)
	}
	return eth, ip, udp
}

func TestFrameBuild(t *testing.T) {
	for _, n := range []int{MinFrameLen, 64, 128, MaxFrameLen} {
		f := testFrame
		f.Len = n
		buf := make([]byte, 2048)
		for i := range buf {
			buf[i] = 0xee // Build must not leave stale bytes in the payload
		}
		got, err := f.Build(buf)
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if got != n {
			t.Fatalf("len %d: Build returned %d", n, got)
		}
		eth, ip, udp := decode(t, buf[:got])
		if eth.SrcMAC.String() != net.HardwareAddr(f.SrcMAC[:]).String() || eth.DstMAC.String() != net.HardwareAddr(f.DstMAC[:]).String() {
			t.Errorf("len %d: macs %v -> %v", n, eth.SrcMAC, eth.DstMAC)
		}
		if !ip.SrcIP.Equal(net.IP(f.Src.AsSlice())) || !ip.DstIP.Equal(net.IP(f.Dst.AsSlice())) || ip.TTL != 64 || ip.IHL != 5 {
			t.Errorf("len %d: ip %v -> %v ttl %d ihl %d", n, ip.SrcIP, ip.DstIP, ip.TTL, ip.IHL)
		}
		if int(ip.Length) != n-14 || int(udp.Length) != n-34 {
			t.Errorf("len %d: ip length %d, udp length %d", n, ip.Length, udp.Length)
		}
		if udp.SrcPort != 1024 || udp.DstPort != 9 {
			t.Errorf("len %d: ports %d -> %d", n, udp.SrcPort, udp.DstPort)
		}
		for i, c := range udp.Payload {
			if c != 0 {
				t.Fatalf("len %d: payload byte %d is %#x, want 0", n, i, c)
			}
		}
	}
}

func TestSetSourcePort(t *testing.T) {
	buf := make([]byte, MinFrameLen)
	if _, err := testFrame.Build(buf); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{0, 1, 1025, 40000, 65535, 1024} {
		SetSourcePort(buf, port)
		_, _, udp := decode(t, buf)
		if uint16(udp.SrcPort) != port {
			t.Errorf("source port %d, want %d", udp.SrcPort, port)
		}
	}
}

func TestFrameRejects(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Frame)
		want string
	}{
		{"short", func(f *Frame) { f.Len = 59 }, "frame length 59"},
		{"long", func(f *Frame) { f.Len = 1515 }, "frame length 1515"},
		{"v6 source", func(f *Frame) { f.Src = netip.MustParseAddr("2001:2::1") }, "frame source 2001:2::1: must be an IPv4 address"},
		{"v4 source to v6", func(f *Frame) { f.Dst = netip.MustParseAddr("2001:2::1") }, "frame source 198.18.0.2: must be an IPv6 address"},
		{"mapped destination", func(f *Frame) { f.Dst = netip.MustParseAddr("::ffff:198.19.0.1") }, "frame destination ::ffff:198.19.0.1"},
		{"v6 short", func(f *Frame) { *f = testFrame6; f.Len = MinFrameLen6 - 1 }, "frame length 61: must be from 62"},
		{"v6 long", func(f *Frame) { *f = testFrame6; f.Len = 1515 }, "frame length 1515"},
		{"no destination", func(f *Frame) { f.Dst = netip.Addr{} }, "frame destination invalid IP"},
		{"port 0", func(f *Frame) { f.DstPort = 0 }, "destination port 0"},
	}
	for _, c := range cases {
		f := testFrame
		c.mod(&f)
		_, err := f.Build(make([]byte, 2048))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := testFrame.Build(make([]byte, 10)); err == nil || !strings.Contains(err.Error(), "buffer of 10 bytes") {
		t.Errorf("short buffer: error %v", err)
	}
}

// TestSetSourceAddr: the address changes and both checksums stay right
// (decode recomputes them with gopacket).
func TestSetSourceAddr(t *testing.T) {
	buf := make([]byte, MinFrameLen)
	if _, err := testFrame.Build(buf); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"198.18.128.0", "198.18.129.3", "198.18.255.255", testFrame.Src.String()} {
		addr := netip.MustParseAddr(a)
		SetSourceAddr(buf, addr.As4())
		SetSourcePort(buf, 4321)
		_, ip, _ := decode(t, buf)
		if !ip.SrcIP.Equal(addr.AsSlice()) {
			t.Errorf("source %s, want %s", ip.SrcIP, addr)
		}
	}
}

var testFrame6 = Frame{
	SrcMAC: [6]byte{0x02, 0, 0, 0, 0, 1}, DstMAC: [6]byte{0x02, 0, 0, 0, 0, 2},
	Src: netip.MustParseAddr("2001:2::2"), Dst: netip.MustParseAddr("2001:2:0:100::1"),
	SrcPort: 1024, DstPort: 9, Len: MinFrameLen6,
}

// decode6 is decode for an IPv6 frame: gopacket parses it and recomputes
// the UDP checksum, which must equal the frame's.
func decode6(t *testing.T, b []byte) (*layers.Ethernet, *layers.IPv6, *layers.UDP) {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || ip == nil || udp == nil {
		t.Fatalf("gopacket found %v, want Ethernet/IPv6/UDP", pkt.Layers())
	}
	if eth.EthernetType != layers.EthernetTypeIPv6 {
		t.Errorf("ethertype %v, want IPv6", eth.EthernetType)
	}
	ip2, udp2 := *ip, *udp
	buf := gopacket.NewSerializeBuffer()
	udp2.SetNetworkLayerForChecksum(&ip2)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		&ip2, &udp2, gopacket.Payload(udp.Payload)); err != nil {
		t.Fatal(err)
	}
	want := gopacket.NewPacket(buf.Bytes(), layers.LayerTypeIPv6, gopacket.Default)
	wudp := want.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp.Checksum != wudp.Checksum || udp.Checksum == 0 {
		t.Errorf("udp checksum %#04x, gopacket computes %#04x (and 0 is not allowed over IPv6)", udp.Checksum, wudp.Checksum)
	}
	return eth, ip, udp
}

// TestFrameBuild6: the IPv6 frame, down to the shortest (62 bytes, 66
// with the FCS), as gopacket reads it.
func TestFrameBuild6(t *testing.T) {
	if MinFrameLen6 != 62 {
		t.Errorf("MinFrameLen6 = %d, want 62 (14 + 40 + 8)", MinFrameLen6)
	}
	for _, n := range []int{MinFrameLen6, 64, 128, MaxFrameLen} {
		f := testFrame6
		f.Len = n
		buf := make([]byte, 2048)
		for i := range buf {
			buf[i] = 0xee
		}
		got, err := f.Build(buf)
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if got != n {
			t.Fatalf("len %d: Build returned %d", n, got)
		}
		eth, ip, udp := decode6(t, buf[:got])
		if eth.SrcMAC.String() != net.HardwareAddr(f.SrcMAC[:]).String() || eth.DstMAC.String() != net.HardwareAddr(f.DstMAC[:]).String() {
			t.Errorf("len %d: macs %v -> %v", n, eth.SrcMAC, eth.DstMAC)
		}
		if !ip.SrcIP.Equal(net.IP(f.Src.AsSlice())) || !ip.DstIP.Equal(net.IP(f.Dst.AsSlice())) || ip.HopLimit != 64 ||
			ip.NextHeader != layers.IPProtocolUDP || ip.TrafficClass != 0 || ip.FlowLabel != 0 {
			t.Errorf("len %d: ip %v -> %v hop limit %d next %v class %d label %d", n, ip.SrcIP, ip.DstIP, ip.HopLimit, ip.NextHeader, ip.TrafficClass, ip.FlowLabel)
		}
		if int(ip.Length) != n-54 || int(udp.Length) != n-54 {
			t.Errorf("len %d: payload length %d, udp length %d, want %d", n, ip.Length, udp.Length, n-54)
		}
		if udp.SrcPort != 1024 || udp.DstPort != 9 {
			t.Errorf("len %d: ports %d -> %d", n, udp.SrcPort, udp.DstPort)
		}
		for i, c := range udp.Payload {
			if c != 0 {
				t.Fatalf("len %d: payload byte %d is %#x, want 0", n, i, c)
			}
		}
	}
}

// TestSetPortsAndAddrs6: the rewrites the generator makes per frame keep
// the IPv6 frame's UDP checksum right (decode6 recomputes it) and change
// only the low 32 bits of an address.
func TestSetPortsAndAddrs6(t *testing.T) {
	buf := make([]byte, MinFrameLen6)
	if _, err := testFrame6.Build(buf); err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{0, 1, 1025, 40000, 65535, 1024} {
		SetSourcePort(buf, port)
		SetDestPort(buf, port^0x5a5a)
		_, _, udp := decode6(t, buf)
		if uint16(udp.SrcPort) != port || uint16(udp.DstPort) != port^0x5a5a {
			t.Errorf("ports %d -> %d, want %d -> %d", udp.SrcPort, udp.DstPort, port, port^0x5a5a)
		}
	}
	for _, low := range []uint32{FlowSources6Low, FlowSources6Low + 260, 0xffffffff, 2} {
		a := flowSource(true, 1+int(low-FlowSources6Low))
		SetSourceAddr(buf, a)
		SetDestAddr(buf, a)
		_, ip, _ := decode6(t, buf)
		want := testFrame6.Src.As16()
		copy(want[12:], a[:])
		wantDst := testFrame6.Dst.As16()
		copy(wantDst[12:], a[:])
		if !ip.SrcIP.Equal(net.IP(want[:])) || !ip.DstIP.Equal(net.IP(wantDst[:])) {
			t.Errorf("low %#x: %s -> %s, want %s -> %s", low, ip.SrcIP, ip.DstIP, net.IP(want[:]), net.IP(wantDst[:]))
		}
	}
}
