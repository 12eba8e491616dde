package encap

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// drForms are DR and DRFrom, which must do the same.
var drForms = map[string]func(f []byte, dst, src [6]byte) bool{
	"DR":     DR,
	"DRFrom": func(f []byte, dst, src [6]byte) bool { return DRFrom(f, &dst, &src) },
}

func TestDR(t *testing.T) {
	for name, dr := range drForms {
		t.Run(name, func(t *testing.T) { testDR(t, dr) })
	}
}

func testDR(t *testing.T, dr func(f []byte, dst, src [6]byte) bool) {
	for _, s := range []spec{{payload: 100}, {udp: true, vlan: true, vlanID: 7}} {
		f := build(t, s)
		orig := append([]byte(nil), f...)
		if !dr(f, rsMAC, egressMAC) {
			t.Fatal("DR refused a full frame")
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatal(el.Error())
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if !bytes.Equal(eth.DstMAC, rsMAC[:]) || !bytes.Equal(eth.SrcMAC, egressMAC[:]) {
			t.Errorf("MACs dst %v src %v", eth.DstMAC, eth.SrcMAC)
		}
		if !bytes.Equal(f[12:], orig[12:]) {
			t.Error("DR changed bytes after the MAC addresses")
		}
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if sum16(ip.Contents) != 0xffff || !ip.DstIP.Equal(vip[:]) {
			t.Errorf("IP header damaged: %+v", ip)
		}
	}
}

func TestDRShortFrame(t *testing.T) {
	for name, dr := range drForms {
		f := make([]byte, 13)
		if dr(f, rsMAC, egressMAC) {
			t.Errorf("%s accepted a 13-byte frame", name)
		}
		if !bytes.Equal(f, make([]byte, 13)) {
			t.Errorf("%s wrote to a frame it refused", name)
		}
		if dr(nil, rsMAC, egressMAC) {
			t.Errorf("%s accepted nil", name)
		}
	}
}

func TestDRAllocs(t *testing.T) {
	f := build(t, spec{})
	if n := testing.AllocsPerRun(100, func() { DR(f, rsMAC, egressMAC) }); n != 0 {
		t.Errorf("DR allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { DRFrom(f, &rsMAC, &egressMAC) }); n != 0 {
		t.Errorf("DRFrom allocates %v times", n)
	}
}

func BenchmarkDR(b *testing.B) {
	f := build(b, spec{udp: true})
	b.ReportAllocs()
	for b.Loop() {
		DR(f, rsMAC, egressMAC)
	}
}
