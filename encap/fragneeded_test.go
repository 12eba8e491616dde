package encap

import (
	"bytes"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestNeedsFrag(t *testing.T) {
	cases := []struct {
		total int
		df    bool
		mtu   int
		want  bool
	}{
		{1500, true, 1500, true},
		{1480, true, 1500, false},
		{1481, true, 1500, true},
		{1481, false, 1500, false}, // without DF the outer packet may be fragmented
		{60, true, 1500, false},
		{9000, true, 9000, true},
		{8980, true, 9000, false},
	}
	for _, c := range cases {
		p := header.Packet{TotalLen: uint16(c.total), DF: c.df}
		if got := NeedsFrag(&p, c.mtu); got != c.want {
			t.Errorf("total %d df %v mtu %d: NeedsFrag = %v", c.total, c.df, c.mtu, got)
		}
	}
}

// checkFragNeeded decodes out with gopacket and verifies every field.
func checkFragNeeded(t *testing.T, out, in []byte, s spec, mtu, returnMTU int) {
	t.Helper()
	pi := parse(t, in)
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.DstMAC, clientMAC[:]) || !bytes.Equal(eth.SrcMAC, directorMAC[:]) {
		t.Errorf("MACs dst %v src %v", eth.DstMAC, eth.SrcMAC)
	}
	if s.vlan {
		q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
		if q == nil || q.VLANIdentifier != s.vlanID || q.Priority != 2 || q.Type != layers.EthernetTypeIPv4 {
			t.Errorf("VLAN tag: %+v", q)
		}
	} else if eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("ethertype %v", eth.EthernetType)
	}
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatalf("no IPv4 layer: %v", pkt)
	}
	// icmp_send: the whole datagram, cut to keep the message within 576
	// bytes and the return MTU.
	quoteLen := min(pi.End-pi.L3, min(576, returnMTU)-28)
	if ip.Version != 4 || ip.IHL != 5 || ip.TOS != s.tos&0x1e|0xc0 || int(ip.Length) != 20+8+quoteLen ||
		ip.Id != 0 || ip.Flags != layers.IPv4DontFragment || ip.FragOffset != 0 || ip.TTL != 64 ||
		ip.Protocol != layers.IPProtocolICMPv4 || !ip.SrcIP.Equal(vip[:]) || !ip.DstIP.Equal(clientIP[:]) {
		t.Errorf("IPv4 header: %+v", ip)
	}
	if sum16(ip.Contents) != 0xffff {
		t.Errorf("IPv4 checksum %#04x does not verify", ip.Checksum)
	}
	if want := gopacketIPChecksum(t, ip); ip.Checksum != want {
		t.Errorf("IPv4 checksum %#04x, gopacket computes %#04x", ip.Checksum, want)
	}
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp == nil {
		t.Fatal("no ICMPv4 layer")
	}
	// gopacket reads the rest-of-header as Id and Seq: unused, next-hop MTU.
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded) ||
		icmp.Id != 0 || int(icmp.Seq) != mtu-20 {
		t.Errorf("ICMP: %v id %d mtu %d", icmp.TypeCode, icmp.Id, icmp.Seq)
	}
	if sum16(ip.Payload) != 0xffff {
		t.Errorf("ICMP checksum %#04x does not verify", icmp.Checksum)
	}
	// gopacket's own encoder must produce the same ICMP checksum.
	c := layers.ICMPv4{TypeCode: icmp.TypeCode, Id: icmp.Id, Seq: icmp.Seq}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, &c, gopacket.Payload(icmp.Payload)); err != nil {
		t.Fatal(err)
	}
	if c.Checksum != icmp.Checksum {
		t.Errorf("ICMP checksum %#04x, gopacket computes %#04x", icmp.Checksum, c.Checksum)
	}
	if !bytes.Equal(icmp.Payload, in[pi.L3:pi.L3+quoteLen]) {
		t.Errorf("quote\n% x\nwant\n% x", icmp.Payload, in[pi.L3:pi.L3+quoteLen])
	}
	if len(out) != pi.L3+20+8+quoteLen {
		t.Errorf("frame %d bytes", len(out))
	}
}

func TestFragNeeded(t *testing.T) {
	specs := []spec{
		{df: true, payload: 1480, tos: 0xb8},
		{df: true, payload: 1460, vlan: true, vlanID: 12, tos: 0x1f},
		{df: true, payload: 1400, ipOpts: routerAlert},
		{df: true, udp: true, payload: 1472},
		{df: true, udp: true}, // exactly 8 bytes after the IP header
	}
	for _, s := range specs {
		for _, mtu := range []int{1500, 1400, 88} {
			for _, returnMTU := range []int{1500, 576, 300, 68} {
				in := build(t, s)
				p := parse(t, in)
				out := make([]byte, 1600)
				n := FragNeeded(out, in, &p, mtu, returnMTU, directorMAC, clientMAC, vip)
				if n == 0 {
					t.Fatalf("%+v mtu %d return MTU %d: FragNeeded refused", s, mtu, returnMTU)
				}
				checkFragNeeded(t, out[:n], in, s, mtu, returnMTU)
			}
		}
	}
}

func TestFragNeededRefuses(t *testing.T) {
	in := build(t, spec{df: true, payload: 1480})
	p := parse(t, in)
	badSrc := func(a [4]byte) *header.Packet { q := p; q.Src = a; return &q }
	badL3 := p
	badL3.L3 = 16
	badVLAN := p
	badVLAN.HasVLAN = true
	badEnd := p
	badEnd.End = len(in) + 1
	badL4 := p
	badL4.L4 = p.L3 + 16
	cases := []struct {
		name string
		out  []byte
		in   []byte
		p    *header.Packet
		mtu  int
	}{
		{"out_too_small", make([]byte, 14+576-1), in, &p, 1500},
		{"hop_mtu_below_68", make([]byte, 200), in, &p, 87},
		{"hop_mtu_over_65535", make([]byte, 200), in, &p, 65556},
		{"nil_packet", make([]byte, 200), in, nil, 1500},
		{"in_shorter_than_packet", make([]byte, 200), in[:40], &p, 1500},
		{"bad_l3", make([]byte, 200), in, &badL3, 1500},
		{"vlan_without_tag", make([]byte, 200), in, &badVLAN, 1500},
		{"end_past_frame", make([]byte, 200), in, &badEnd, 1500},
		{"ihl_below_20", make([]byte, 200), in, &badL4, 1500},
		{"src_zero", make([]byte, 200), in, badSrc([4]byte{0, 0, 0, 0}), 1500},
		{"src_loopback", make([]byte, 200), in, badSrc([4]byte{127, 0, 0, 1}), 1500},
		{"src_multicast", make([]byte, 200), in, badSrc([4]byte{224, 0, 0, 5}), 1500},
		{"src_broadcast", make([]byte, 200), in, badSrc([4]byte{255, 255, 255, 255}), 1500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := FragNeeded(c.out, c.in, c.p, c.mtu, 1500, directorMAC, clientMAC, vip); n != 0 {
				t.Errorf("FragNeeded built %d bytes", n)
			}
		})
	}
	// The smallest out that fits is accepted: a 576-byte message quoting
	// 548 bytes of the 1500-byte packet.
	if n := FragNeeded(make([]byte, 14+576), in, &p, 1500, 1500, directorMAC, clientMAC, vip); n != 14+576 {
		t.Errorf("exact-size out: %d", n)
	}
	// A return MTU with no room for the quoted IP header builds nothing,
	// as icmp_send sends nothing (room <= sizeof(struct iphdr)).
	for _, returnMTU := range []int{48, 40, 0, -1} {
		if n := FragNeeded(make([]byte, 1600), in, &p, 1500, returnMTU, directorMAC, clientMAC, vip); n != 0 {
			t.Errorf("return MTU %d: FragNeeded built %d bytes", returnMTU, n)
		}
	}
	if n := FragNeeded(make([]byte, 1600), in, &p, 1500, 49, directorMAC, clientMAC, vip); n != 14+49 {
		t.Errorf("return MTU 49: FragNeeded built %d bytes, want a 49-byte datagram quoting 21", n)
	}
}

func TestFragNeededAllocs(t *testing.T) {
	in := build(t, spec{df: true, payload: 1480})
	p := parse(t, in)
	out := make([]byte, 1600)
	if n := testing.AllocsPerRun(100, func() {
		if NeedsFrag(&p, 1500) {
			FragNeeded(out, in, &p, 1500, 1500, directorMAC, clientMAC, vip)
		}
	}); n != 0 {
		t.Errorf("FragNeeded allocates %v times", n)
	}
}

func BenchmarkFragNeeded(b *testing.B) {
	in := build(b, spec{df: true, payload: 1480})
	p := parse(b, in)
	out := make([]byte, 1600)
	b.ReportAllocs()
	for b.Loop() {
		if FragNeeded(out, in, &p, 1500, 1500, directorMAC, clientMAC, vip) == 0 {
			b.Fatal("refused")
		}
	}
}
