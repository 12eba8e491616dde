package encap

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
)

// TestFragmentAFragment: a packet that is itself a fragment (the director
// forwards fragments without reassembling them) is split into two
// fragments of the same datagram: the pieces start at its offset, the
// first has MF, and the second keeps the packet's own MF.
func TestFragmentAFragment(t *testing.T) {
	for _, c := range []struct {
		name   string
		offset uint16 // 8-byte units
		mf     bool
	}{
		{"middle fragment", 185, true},
		{"last fragment", 370, false},
		{"first fragment", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := build(t, spec{udp: true, payload: 1472, id: 77})
			ip := header.IPv4(orig[header.EthernetLen:])
			ff := c.offset
			if c.mf {
				ff |= header.IPv4FlagMF
			}
			ip.SetFlagsFragment(ff)
			ip.SetChecksum(0)
			ip.SetChecksum(ip.CalculateChecksum())
			var p header.Packet
			if r := header.Parse(orig, &p); r != header.Fragment {
				t.Fatalf("parse: %v", r)
			}
			buf := append([]byte(nil), orig...)
			second := make([]byte, 2048)
			n1, n2, ok := FragmentDR(buf, 0, len(buf), &p, 1400, egressMAC, rsMAC, second)
			if !ok {
				t.Fatal("refused")
			}
			at := int(c.offset) * 8
			for i, f := range [][]byte{buf[:n1], second[:n2]} {
				pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
				ipl, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ipl == nil || sum16(ipl.Contents) != 0xffff || ipl.Id != 77 || int(ipl.Length) > 1400 {
					t.Fatalf("piece %d: %v", i, pkt)
				}
				wantMF := i == 0 || c.mf
				if mf := ipl.Flags&layers.IPv4MoreFragments != 0; mf != wantMF || int(ipl.FragOffset)*8 != at {
					t.Fatalf("piece %d: MF %v at %d, want MF %v at %d", i, mf, int(ipl.FragOffset)*8, wantMF, at)
				}
				at += len(ipl.Payload)
			}
			if at != int(c.offset)*8+int(ip.TotalLength())-20 {
				t.Fatalf("pieces end at %d", at)
			}
		})
	}
}
