package dataplane

import (
	"bytes"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
)

// TestProcess4in6Fragments: an IPv4 packet without DF too big for its
// IPv6 tunnel (MTU 1500 less 40) goes out as two inner IPv4 fragments,
// each in its own IPv6 packet from the director to the IPv6 real server,
// no outer packet over the MTU and neither outer packet fragmented; the
// fragments reassemble into the client's packet; it counts as one packet
// in and one fragmented, with no drop. A later fragment of a datagram is
// split the same way, keeping its offset and MF.
func TestProcess4in6Fragments(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int    // the client's IPv4 packet
		frag  uint16 // its flags/offset word: a fragment of a bigger datagram
		first int    // the first fragment's payload
	}{
		{name: "a packet of 1461 bytes", size: 1461, first: 1440},
		{name: "a packet of 2900 bytes", size: 2900, first: 1440},
		{name: "a middle fragment", size: 1500, frag: header.IPv4FlagMF | 185, first: 1440},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFxRig6(t, 1024, 64)
			setFrag := func(f []byte, ff uint16) []byte {
				ip := header.IPv4(f[14:34])
				ip.SetFlagsFragment(ff)
				ip.SetChecksum(0)
				ip.SetChecksum(ip.CalculateChecksum())
				return f
			}
			in := seg(t, fxVIP4TUN6, 80, fxPayload(tc.size-40), noDF)
			if tc.frag != 0 {
				// The datagram's first fragment, which fits, makes the
				// decision the later one follows.
				sendFirst(setFrag(seg(t, fxVIP4TUN6, 80, fxPayload(1000-40), noDF), header.IPv4FlagMF))(t, r)
				setFrag(in, tc.frag)
			}
			var before, after Totals
			before.Add(r.c)
			v, out1, out2 := r.run(in, 256)
			after.Add(r.c)
			if v != VerdictForward || out2 == nil {
				t.Fatalf("verdict %d, second frame %v: want two frames forwarded", v, out2 != nil)
			}
			for d := range NumDrops {
				if got := after.Drops[d] - before.Drops[d]; got != 0 {
					t.Errorf("drop %s moved by %d", Drop(d), got)
				}
			}
			if got := after.Fragmented - before.Fragmented; got != 1 {
				t.Errorf("fragmented moved by %d, want 1", got)
			}
			inner := in[14:]
			base := tc.frag & header.IPv4FragOffsetMask
			payload := inner[20:]
			var got []byte
			for i, out := range [][]byte{out1, out2} {
				if len(out) > 14+1500 {
					t.Errorf("frame %d: %d bytes, over the MTU", i, len(out))
				}
				pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
				eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
				o, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if eth == nil || o == nil || ip == nil {
					t.Fatalf("frame %d is not Ethernet/IPv6/IPv4: %v", i, pkt)
				}
				if !bytes.Equal(eth.SrcMAC, fxDirMAC) || !bytes.Equal(eth.DstMAC, fxMAC(fxRS6TUN4)) {
					t.Errorf("frame %d: MACs %s -> %s", i, eth.SrcMAC, eth.DstMAC)
				}
				if s, d := addr(o.SrcIP), addr(o.DstIP); s != fxDir6 || d != fxRS6TUN4 || o.NextHeader != layers.IPProtocolIPv4 ||
					int(o.Length) != int(ip.Length) || o.HopLimit != ip.TTL || o.TrafficClass != ip.TOS {
					t.Errorf("frame %d: outer %s -> %s next %v length %d hop %d class %#x; inner length %d TTL %d TOS %#x",
						i, s, d, o.NextHeader, o.Length, o.HopLimit, o.TrafficClass, ip.Length, ip.TTL, ip.TOS)
				}
				ih := header.IPv4(out[14+40 : 14+40+20])
				if ih.CalculateChecksum() != ih.Checksum() {
					t.Errorf("frame %d: inner IPv4 checksum %#04x is wrong", i, ih.Checksum())
				}
				if addr(ip.SrcIP) != fxClient || addr(ip.DstIP) != fxVIP4TUN6 || ip.Id != 4242 || ip.Flags&layers.IPv4DontFragment != 0 {
					t.Errorf("frame %d: inner %s -> %s ID %d flags %v", i, ip.SrcIP, ip.DstIP, ip.Id, ip.Flags)
				}
				wantOff, wantMF := base, true
				if i == 1 {
					wantOff, wantMF = base+uint16(tc.first/8), tc.frag&header.IPv4FlagMF != 0
				}
				if ip.FragOffset != wantOff || (ip.Flags&layers.IPv4MoreFragments != 0) != wantMF {
					t.Errorf("frame %d: offset %d MF %v, want %d %v", i, ip.FragOffset, ip.Flags&layers.IPv4MoreFragments != 0, wantOff, wantMF)
				}
				got = append(got, out[14+40+20:14+40+int(ip.Length)]...)
			}
			if len(out1)-14-40-20 != tc.first {
				t.Errorf("first fragment carries %d bytes, want %d", len(out1)-14-40-20, tc.first)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("the fragments' payloads (%d bytes) are not the packet's (%d bytes)", len(got), len(payload))
			}
		})
	}
}

// TestProcess4in6FragmentAllocs: splitting a packet for an IPv6 tunnel
// allocates nothing.
func TestProcess4in6FragmentAllocs(t *testing.T) {
	r := newFxRig6(t, 1024, 64)
	in := seg(t, fxVIP4TUN6, 80, fxPayload(1461-40), noDF)
	buf := make([]byte, maxFrame)
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[256:], in)
		if v, out := r.p.Process(r.snap, buf, 256, len(in)); v != VerdictForward || !out.Second {
			t.Fatalf("verdict %d, second %v", v, out.Second)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per split packet, want 0", allocs)
	}
}
