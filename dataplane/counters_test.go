package dataplane

import (
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// TestTrafficCountsLikeIPVS follows ip_vs_in_stats and ip_vs_out_stats:
// every client packet passed to a real server counts one packet in and its
// IP total length (skb->len at the IP layer: no Ethernet header, no
// padding, no tunnel header) as bytes in; nothing counts out, since with DR
// and TUN the replies never pass the director. A packet split in two
// fragments is one packet in.
func TestTrafficCountsLikeIPVS(t *testing.T) {
	for _, fwd := range []vs.Fwd{vs.Route, vs.Tunnel} {
		t.Run(fwd.String(), func(t *testing.T) {
			r := newRig(t, oneService(fwd, "rr", 1), 1024)
			r.snap.Ifaces[0].MTU = 1400 // the 1500-byte packet goes out in two fragments
			client := [4]byte{198, 18, 0, 10}
			frames := [][]byte{
				tcpFrame(t, client, 6000, true, false, false, true, 0),     // 40 bytes of IP, padded to a 60-byte frame
				tcpFrame(t, client, 6000, false, true, false, true, 100),   // 140
				tcpFrame(t, client, 6000, false, true, false, false, 1460), // 1500, no DF: split in two
			}
			var wantBytes uint64
			for i, f := range frames {
				if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictForward {
					t.Fatalf("frame %d: verdict %d", i, v)
				}
				wantBytes += uint64(header.IPv4(f[14:]).TotalLength())
			}
			if len(frames[0]) != 60 || wantBytes != 40+140+1500 {
				t.Fatalf("fixture: first frame %d bytes, IP bytes %d", len(frames[0]), wantBytes)
			}
			if r.c.Fragmented.Load() != 1 {
				t.Fatalf("fragmented %d, want the last packet split", r.c.Fragmented.Load())
			}
			want := Traffic{Conns: 1, InPkts: 3, InBytes: wantBytes}
			id := r.snap.Services[0].Dests[0].ID
			if got := r.c.Service(r.snap.Services[0].ID); got != want {
				t.Errorf("service traffic %+v, want %+v", got, want)
			}
			if got := r.c.Dest(id); got != want {
				t.Errorf("real server traffic %+v, want %+v", got, want)
			}
		})
	}
}

// TestTrafficCountedBeforeTransmit: IPVS counts a packet in before its
// transmitter runs, so a packet the transmitter cannot send (here: too big
// with DF, answered with ICMP) is still counted in; out stays 0.
func TestTrafficCountedBeforeTransmit(t *testing.T) {
	r := newRig(t, oneService(vs.Tunnel, "rr", 1), 1024)
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 6100, true, false, false, true, 1460)
	if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictReply {
		t.Fatalf("verdict %d, want an ICMP reply", v)
	}
	want := Traffic{Conns: 1, InPkts: 1, InBytes: 1500}
	if got := r.c.Service(r.snap.Services[0].ID); got != want {
		t.Errorf("service traffic %+v, want %+v", got, want)
	}
}

// TestProcessDropsFramesNoHostMaySend: martian sources, TTL 0 and IPv4
// options that run past the header are dropped before the connection
// table, counted under their parse reason, and cost no allocation.
func TestProcessDropsFramesNoHostMaySend(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	syn := func(src [4]byte, edit func(ip header.IPv4)) []byte {
		f := tcpFrame(t, src, 6200, true, false, false, true, 0)
		ip := header.IPv4(f[14:34])
		if edit != nil {
			edit(ip)
		}
		ip.SetChecksum(ip.CalculateChecksum())
		return f
	}
	// One 4-byte option whose length byte says 8: the header is rebuilt
	// with IHL 6 and the option in place of the TCP header's first word,
	// which is what a header with options looks like to Parse.
	badOpts := func() []byte {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 6201, true, false, false, true, 4)
		g := append(append(append([]byte(nil), f[:34]...), 0x94, 8, 0, 0), f[34:]...)
		ip := header.IPv4(g[14:])
		ip.SetVersionIHL(24)
		ip.SetTotalLength(ip.TotalLength() + 4)
		ip.SetChecksum(ip.CalculateChecksum())
		return g
	}
	cases := []struct {
		name  string
		frame []byte
		want  header.Reason
	}{
		{"source 0.0.0.0", syn([4]byte{}, nil), header.MartianSource},
		{"source 127.0.0.1", syn([4]byte{127, 0, 0, 1}, nil), header.MartianSource},
		{"source 224.0.0.1", syn([4]byte{224, 0, 0, 1}, nil), header.MartianSource},
		{"source 240.1.2.3", syn([4]byte{240, 1, 2, 3}, nil), header.MartianSource},
		{"source 255.255.255.255", syn([4]byte{255, 255, 255, 255}, nil), header.MartianSource},
		{"ttl 0", syn([4]byte{198, 18, 0, 10}, func(ip header.IPv4) { ip.SetTTL(0) }), header.TTLZero},
		{"option past header", badOpts(), header.BadIPOptions},
	}
	want := map[header.Reason]uint64{}
	for _, c := range cases {
		if v, _ := r.p.Process(r.snap, chunk(c.frame), headroom, len(c.frame)); v != VerdictDrop {
			t.Errorf("%s: verdict %d, want drop", c.name, v)
		}
		want[c.want]++
		if got := r.c.Parse[c.want].Load(); got != want[c.want] {
			t.Errorf("%s: %v counted %d, want %d", c.name, c.want, got, want[c.want])
		}
	}
	if n := r.ct.Stats().Inserted; n != 0 {
		t.Errorf("%d connections made from frames that must not be forwarded", n)
	}
	if got := r.c.Service(r.snap.Services[0].ID); got != (Traffic{}) {
		t.Errorf("service counted %+v", got)
	}
	var tot Totals
	tot.Add(r.c)
	if tot.Parse[header.MartianSource] != 5 || tot.Parse[header.TTLZero] != 1 || tot.Parse[header.BadIPOptions] != 1 {
		t.Errorf("totals %v", tot.Parse)
	}
	// The same frame with a sound option and a good source is forwarded:
	// the drops above are for the reasons named, not for the shape.
	ok := badOpts()
	ok[14+21] = 4
	header.IPv4(ok[14:]).SetChecksum(header.IPv4(ok[14:38]).CalculateChecksum())
	if v, _ := r.p.Process(r.snap, chunk(ok), headroom, len(ok)); v != VerdictForward {
		t.Errorf("the same frame with a 4-byte option: verdict %d, want forward", v)
	}
	buf := make([]byte, 2048)
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, func() {
			copy(buf[headroom:], c.frame)
			r.p.Process(r.snap, buf, headroom, len(c.frame))
		}); n != 0 {
			t.Errorf("%s: %v allocations per frame", c.name, n)
		}
	}
}

// TestLimitsAreTheModels: the config loader refuses a table past vs's
// limits, naming the key, so the dataplane's own limits must be the same.
func TestLimitsAreTheModels(t *testing.T) {
	if MaxServices != vs.MaxServices || MaxDests != vs.MaxDests || maxServiceKeys != vs.MaxMarkKeys {
		t.Errorf("dataplane limits %d services, %d dests, %d mark keys; vs says %d, %d, %d",
			MaxServices, MaxDests, maxServiceKeys, vs.MaxServices, vs.MaxDests, vs.MaxMarkKeys)
	}
}
