package encap

import (
	"bytes"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// unwrap decodes one tunnelled fragment with gopacket: the outer header
// must be a plain IPIP header to the real server, the inner one a valid
// fragment of the client's packet. It returns the inner header.
func unwrap(t *testing.T, frame []byte, mtu int) *layers.IPv4 {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	ips := []*layers.IPv4{}
	for _, l := range pkt.Layers() {
		if ip, ok := l.(*layers.IPv4); ok {
			ips = append(ips, ip)
		}
	}
	if len(ips) != 2 {
		t.Fatalf("%d IPv4 headers in a tunnelled fragment: %v", len(ips), pkt)
	}
	outer, inner := ips[0], ips[1]
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if [6]byte(eth.DstMAC) != rsMAC || [6]byte(eth.SrcMAC) != egressMAC {
		t.Fatalf("MACs %v -> %v", eth.SrcMAC, eth.DstMAC)
	}
	if outer.Protocol != layers.IPProtocolIPv4 || [4]byte(outer.SrcIP.To4()) != directorIP || [4]byte(outer.DstIP.To4()) != rsIP {
		t.Fatalf("outer header %+v", outer)
	}
	if int(outer.Length) > mtu || outer.Flags&layers.IPv4MoreFragments != 0 || outer.FragOffset != 0 {
		t.Fatalf("outer packet of %d bytes (MTU %d), flags %v offset %d", outer.Length, mtu, outer.Flags, outer.FragOffset)
	}
	for _, ip := range []*layers.IPv4{outer, inner} {
		if sum16(ip.Contents) != 0xffff {
			t.Fatalf("bad header checksum: %+v", ip)
		}
	}
	return inner
}

func TestFragmentIPIP(t *testing.T) {
	for _, c := range []struct {
		name    string
		s       spec
		mtu     int
		headOff int
	}{
		{"tcp 1500 at MTU 1500", spec{payload: 1460, id: 4242}, 1500, 256},
		{"udp 1500 at MTU 1500", spec{udp: true, payload: 1472, id: 7}, 1500, 256},
		{"vlan, MTU 1400", spec{vlan: true, vlanID: 9, payload: 1460, id: 1}, 1400, 256},
		{"no headroom", spec{payload: 1460, id: 9}, 1500, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := build(t, c.s)
			p := parse(t, orig)
			buf := make([]byte, c.headOff+len(orig)+64)
			copy(buf[c.headOff:], orig)
			second := make([]byte, 2048)
			off, n, n2, ok := FragmentIPIP(buf, c.headOff, len(orig), &p, c.mtu, directorIP, rsIP, egressMAC, rsMAC, second)
			if !ok {
				t.Fatal("refused")
			}
			f1 := unwrap(t, buf[off:off+n], c.mtu)
			f2 := unwrap(t, second[:n2], c.mtu)
			if f1.Flags&layers.IPv4MoreFragments == 0 || f1.FragOffset != 0 || f2.Flags&layers.IPv4MoreFragments != 0 || f2.FragOffset == 0 {
				t.Fatalf("fragment flags/offsets: first %v/%d, second %v/%d", f1.Flags, f1.FragOffset, f2.Flags, f2.FragOffset)
			}
			if f1.Id != c.s.id || f2.Id != c.s.id || f1.Protocol != f2.Protocol || f1.TTL != 61 {
				t.Fatalf("fragments disagree: ids %d %d, want %d", f1.Id, f2.Id, c.s.id)
			}
			if int(f2.FragOffset)*8 != len(f1.Payload) {
				t.Fatalf("second fragment at %d, first carries %d bytes", int(f2.FragOffset)*8, len(f1.Payload))
			}
			// Reassembled, the payloads are the client's packet byte for byte.
			want := orig[p.L3+header.IPv4MinLen : p.End]
			if got := append(append([]byte(nil), f1.Payload...), f2.Payload...); !bytes.Equal(got, want) {
				t.Fatalf("reassembled %d bytes differ from the %d sent", len(got), len(want))
			}
		})
	}
}

func TestFragmentIPIPRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		s    spec
		mtu  int
	}{
		{"DF set", spec{df: true, payload: 1460}, 1500},
		{"three fragments needed", spec{payload: 1460}, 700},
		{"IP options", spec{payload: 1400, ipOpts: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}, 1400},
		{"fits whole", spec{payload: 100}, 1500},
	} {
		orig := build(t, c.s)
		p := parse(t, orig)
		buf := make([]byte, 256+len(orig))
		copy(buf[256:], orig)
		before := append([]byte(nil), buf...)
		second := make([]byte, 2048)
		if _, _, _, ok := FragmentIPIP(buf, 256, len(orig), &p, c.mtu, directorIP, rsIP, egressMAC, rsMAC, second); ok {
			t.Errorf("%s: fragmented", c.name)
		}
		if !bytes.Equal(buf, before) {
			t.Errorf("%s: refused but changed the frame", c.name)
		}
	}
}

func TestFragmentIPIPAllocs(t *testing.T) {
	orig := build(t, spec{payload: 1460})
	p := parse(t, orig)
	buf := make([]byte, 256+len(orig))
	second := make([]byte, 2048)
	if a := testing.AllocsPerRun(100, func() {
		copy(buf[256:], orig)
		FragmentIPIP(buf, 256, len(orig), &p, 1500, directorIP, rsIP, egressMAC, rsMAC, second)
	}); a != 0 {
		t.Fatalf("%v allocs per call", a)
	}
}

func TestFragmentDR(t *testing.T) {
	for _, c := range []struct {
		name string
		s    spec
		mtu  int
	}{
		{"tcp 1500 at MTU 1400", spec{payload: 1460, id: 99}, 1400},
		{"vlan udp at MTU 1000", spec{vlan: true, vlanID: 3, udp: true, payload: 1200, id: 5}, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := build(t, c.s)
			p := parse(t, orig)
			buf := append([]byte(nil), orig...)
			second := make([]byte, 2048)
			n1, n2, ok := FragmentDR(buf, 0, len(buf), &p, c.mtu, egressMAC, rsMAC, second)
			if !ok {
				t.Fatal("refused")
			}
			var payload []byte
			for i, f := range [][]byte{buf[:n1], second[:n2]} {
				pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
				eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ip == nil || [6]byte(eth.DstMAC) != rsMAC || [6]byte(eth.SrcMAC) != egressMAC {
					t.Fatalf("fragment %d: %v", i, pkt)
				}
				if int(ip.Length) > c.mtu || sum16(ip.Contents) != 0xffff || ip.Id != c.s.id {
					t.Fatalf("fragment %d: length %d (MTU %d), id %d", i, ip.Length, c.mtu, ip.Id)
				}
				if mf := ip.Flags&layers.IPv4MoreFragments != 0; mf != (i == 0) || int(ip.FragOffset)*8 != len(payload) {
					t.Fatalf("fragment %d: MF %v at offset %d after %d bytes", i, mf, int(ip.FragOffset)*8, len(payload))
				}
				payload = append(payload, ip.Payload...)
			}
			if !bytes.Equal(payload, orig[p.L3+header.IPv4MinLen:p.End]) {
				t.Fatal("reassembled payload differs from the packet sent")
			}
		})
	}
	// DF set: not fragmented, frame untouched.
	orig := build(t, spec{df: true, payload: 1460})
	p := parse(t, orig)
	buf := append([]byte(nil), orig...)
	if _, _, ok := FragmentDR(buf, 0, len(buf), &p, 1400, egressMAC, rsMAC, make([]byte, 2048)); ok || !bytes.Equal(buf, orig) {
		t.Fatal("a DF packet was fragmented or changed")
	}
}
