package header

import (
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestAccessorsAgainstGopacket reads every field of gopacket-built headers
// through the accessors and compares with gopacket's decoding.
func TestAccessorsAgainstGopacket(t *testing.T) {
	f := build(t, spec{vlan: true, vlanID: 42, prio: 3, tos: 0xb8, df: true, id: 0xbeef, ttl: 17,
		sport: 40001, dport: 8080, syn: true, ack: true, ipOpts: routerAlert})
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	ge := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	gq := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	gi := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	gt := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)

	e := Ethernet(f)
	if d, s := e.DstMAC(), e.SrcMAC(); net.HardwareAddr(d[:]).String() != ge.DstMAC.String() || net.HardwareAddr(s[:]).String() != ge.SrcMAC.String() {
		t.Errorf("MACs %x %x", d, s)
	}
	if e.EtherType() != uint16(ge.EthernetType) || e.InnerEtherType() != uint16(gq.Type) || e.VLANTCI()&0xfff != gq.VLANIdentifier || uint8(e.VLANTCI()>>13) != gq.Priority {
		t.Errorf("ethertypes %#x %#x tci %#x", e.EtherType(), e.InnerEtherType(), e.VLANTCI())
	}

	ip := IPv4(f[18:])
	got := []int{int(ip.Version()), ip.HeaderLen(), int(ip.TOS()), int(ip.TotalLength()), int(ip.ID()), int(ip.TTL()), int(ip.Protocol()), int(ip.Checksum()), ip.FragmentOffset()}
	want := []int{int(gi.Version), int(gi.IHL) * 4, int(gi.TOS), int(gi.Length), int(gi.Id), int(gi.TTL), int(gi.Protocol), int(gi.Checksum), int(gi.FragOffset) * 8}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("ipv4 field %d: %d, gopacket %d", i, got[i], want[i])
		}
	}
	if ip.DF() != (gi.Flags&layers.IPv4DontFragment != 0) || ip.MF() {
		t.Error("flags")
	}
	if s, d := ip.Src(), ip.Dst(); !net.IP(s[:]).Equal(gi.SrcIP) || !net.IP(d[:]).Equal(gi.DstIP) {
		t.Error("addresses")
	}
	if !ip.IsChecksumValid() || ip.CalculateChecksum() != gi.Checksum {
		t.Errorf("checksum: computed %#x, gopacket wrote %#x", ip.CalculateChecksum(), gi.Checksum)
	}
	if len(ip.Payload()) != len(gi.Payload) {
		t.Errorf("payload %d bytes, gopacket %d", len(ip.Payload()), len(gi.Payload))
	}

	tc := TCP(f[18+24:])
	if tc.SrcPort() != uint16(gt.SrcPort) || tc.DstPort() != uint16(gt.DstPort) || tc.Seq() != gt.Seq || tc.Ack() != gt.Ack ||
		tc.HeaderLen() != int(gt.DataOffset)*4 || tc.Window() != gt.Window || tc.Checksum() != gt.Checksum ||
		tc.Flags() != TCPFlagSYN|TCPFlagACK {
		t.Errorf("tcp fields differ from gopacket %+v", gt)
	}

	fu := build(t, spec{udp: true, sport: 67, dport: 68, payload: []byte("hello")})
	gu := gopacket.NewPacket(fu, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeUDP).(*layers.UDP)
	u := UDP(fu[34:])
	if u.SrcPort() != 67 || u.DstPort() != 68 || u.Length() != gu.Length || u.Checksum() != gu.Checksum {
		t.Errorf("udp fields differ from gopacket %+v", gu)
	}
}

// TestSettersRoundTrip writes fields with the setters and decodes the result
// with gopacket.
func TestSettersRoundTrip(t *testing.T) {
	f := build(t, spec{vlan: true, sport: 1, dport: 2})
	e := Ethernet(f)
	e.SetDstMAC([6]byte{0x02, 1, 2, 3, 4, 5})
	e.SetSrcMAC([6]byte{0x02, 6, 7, 8, 9, 10})
	e.SetVLANTCI(7<<13 | 4094)
	ip := IPv4(f[18:])
	ip.SetTOS(0x2e)
	ip.SetID(0xabcd)
	ip.SetFlagsFragment(IPv4FlagDF)
	ip.SetTTL(5)
	ip.SetSrc([4]byte{198, 19, 0, 1})
	ip.SetDst([4]byte{198, 19, 0, 2})
	ip.SetChecksum(0)
	ip.SetChecksum(ip.CalculateChecksum())
	tc := TCP(f[38:])
	tc.SetSrcPort(1111)
	tc.SetDstPort(2222)
	tc.SetFlags(TCPFlagFIN | TCPFlagPSH)
	tc.SetChecksum(0x1234)

	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatal(el.Error())
	}
	ge := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	gq := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
	gi := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	gt := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ge.DstMAC.String() != "02:01:02:03:04:05" || ge.SrcMAC.String() != "02:06:07:08:09:0a" || gq.Priority != 7 || gq.VLANIdentifier != 4094 {
		t.Errorf("ethernet: %v %v %+v", ge.DstMAC, ge.SrcMAC, gq)
	}
	if gi.TOS != 0x2e || gi.Id != 0xabcd || gi.Flags != layers.IPv4DontFragment || gi.TTL != 5 ||
		gi.SrcIP.String() != "198.19.0.1" || gi.DstIP.String() != "198.19.0.2" || refChecksum(f[18:38]) != 0xffff {
		t.Errorf("ipv4: %+v", gi)
	}
	if gt.SrcPort != 1111 || gt.DstPort != 2222 || !gt.FIN || !gt.PSH || gt.SYN || gt.ACK || gt.Checksum != 0x1234 {
		t.Errorf("tcp: %+v", gt)
	}

	b := make([]byte, 20)
	IPv4(b).SetVersionIHL(24)
	IPv4(b).SetTotalLength(300)
	IPv4(b).SetProtocol(ProtocolIPIP)
	if IPv4(b).Version() != 4 || IPv4(b).HeaderLen() != 24 || IPv4(b).TotalLength() != 300 || IPv4(b).Protocol() != 4 {
		t.Errorf("version/ihl/length/proto: % x", b)
	}
	u := UDP(make([]byte, 8))
	u.SetSrcPort(1)
	u.SetDstPort(2)
	u.SetLength(9)
	u.SetChecksum(3)
	if u.SrcPort() != 1 || u.DstPort() != 2 || u.Length() != 9 || u.Checksum() != 3 {
		t.Errorf("udp: % x", []byte(u))
	}
	e2 := Ethernet(make([]byte, 18))
	e2.SetEtherType(EtherTypeVLAN)
	e2.SetInnerEtherType(EtherTypeARP)
	if e2.EtherType() != 0x8100 || e2.InnerEtherType() != 0x0806 {
		t.Errorf("ethertypes: % x", []byte(e2))
	}
}

// TestICMPv4AgainstGopacket builds a fragmentation-needed message with the
// setters and decodes it with gopacket.
func TestICMPv4AgainstGopacket(t *testing.T) {
	m := ICMPv4(make([]byte, 8+28))
	for i := 8; i < len(m); i++ {
		m[i] = byte(i)
	}
	m.SetType(ICMPv4DestUnreachable)
	m.SetCode(ICMPv4FragNeeded)
	m.SetRest(0xffffffff)
	m.SetMTU(1480)
	m.SetChecksum(m.CalculateChecksum())
	var g layers.ICMPv4
	if err := g.DecodeFromBytes(m, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if g.TypeCode.Type() != 3 || g.TypeCode.Code() != 4 || g.Id != 0 || g.Seq != 1480 || m.MTU() != 1480 || m.Rest() != 1480 {
		t.Errorf("decoded %v id %d seq %d", g.TypeCode, g.Id, g.Seq)
	}
	if m.Type() != 3 || m.Code() != 4 || m.Checksum() != g.Checksum || refChecksum(m) != 0xffff {
		t.Errorf("checksum %#x does not verify", m.Checksum())
	}
}
