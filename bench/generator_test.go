package bench

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane/xsk/xsktest"
)

// newFakePort is an in-memory socket whose contract violations fail t.
func newFakePort(t testing.TB, frames, fs int) *xsktest.Port {
	p := xsktest.New(frames, fs)
	p.Misuse = func(msg string) { t.Error(msg) }
	return p
}

func TestGeneratorCyclesFlows(t *testing.T) {
	const flows = 5
	p := newFakePort(t, 64, 2048)
	p.Record = true
	g, err := newGenerator(p, testFrame, flows)
	if err != nil {
		t.Fatal(err)
	}
	// Two steps of at most 64 frames each, the fake completing between.
	total := 0
	for range 2 {
		n, err := g.Step()
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 128 || len(p.Recorded()) != 128 {
		t.Fatalf("queued %d, fake saw %d, want 128 each", total, len(p.Recorded()))
	}
	for i, s := range p.Recorded() {
		b := s.Frame
		_, _, udp := decode(t, b)
		if want := FirstSourcePort + i%flows; int(udp.SrcPort) != want {
			t.Fatalf("frame %d: source port %d, want %d", i, udp.SrcPort, want)
		}
		if len(b) != MinFrameLen {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(b), MinFrameLen)
		}
	}
	if g.sent != 64 {
		t.Errorf("sent %d after the second step's reap, want 64", g.sent)
	}
}

func TestGeneratorReleasesRefused(t *testing.T) {
	p := newFakePort(t, 512, 2048)
	p.TxCap = 10
	g, err := newGenerator(p, testFrame, 100)
	if err != nil {
		t.Fatal(err)
	}
	n, err := g.Step()
	if err != nil || n != 10 {
		t.Fatalf("Step = %d, %v; want 10 queued", n, err)
	}
	// Every chunk is either free or in flight: none leaked.
	if got := p.Free() + p.InFlight(); got != 512 {
		t.Errorf("free %d + in flight %d = %d chunks, want 512", p.Free(), p.InFlight(), got)
	}
}

func TestGeneratorRun(t *testing.T) {
	p := newFakePort(t, 1024, 2048)
	g, err := newGenerator(p, testFrame, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(20 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent == 0 || st.Sent != st.Queued || st.Sent != uint64(p.Transmitted()) {
		t.Errorf("sent %d, queued %d, fake transmitted %d: want equal and positive", st.Sent, st.Queued, p.Transmitted())
	}
	if st.Elapsed < 20*time.Millisecond {
		t.Errorf("elapsed %s, want at least the 20ms asked for", st.Elapsed)
	}
}

func TestGeneratorRejects(t *testing.T) {
	for _, c := range []struct {
		flows int
		len   int
		fs    int
		want  string
	}{
		{0, 60, 2048, "flows 0"},
		{MaxFlows + 1, 60, 2048, fmt.Sprintf("flows %d", MaxFlows+1)},
		{1, 1514, 1024, "frame length 1514: must fit the 1024-byte"},
		{1, 59, 2048, "frame length 59"},
	} {
		f := testFrame
		f.Len = c.len
		_, err := newGenerator(newFakePort(t, 4, c.fs), f, c.flows)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flows %d len %d: error %v, want one containing %q", c.flows, c.len, err, c.want)
		}
	}
}

func TestGeneratorStepAllocs(t *testing.T) {
	p := newFakePort(t, 4096, 2048)
	g, err := newGenerator(p, testFrame, 1000)
	if err != nil {
		t.Fatal(err)
	}
	g.Step() // grow the fake's slices to their working size
	if a := testing.AllocsPerRun(100, func() { g.Step() }); a != 0 {
		t.Errorf("Step allocates %v times per batch, want 0", a)
	}
}

func TestForwarderRewritesAndCopies(t *testing.T) {
	rx, tx := newFakePort(t, 64, 2048), newFakePort(t, 64, 2048)
	tx.Record = true
	dst, src := [6]byte{0x02, 0xaa, 0, 0, 0, 1}, [6]byte{0x02, 0xbb, 0, 0, 0, 2}
	f := newForwarder(rx, tx, dst, src)
	in := make([]byte, MinFrameLen)
	if _, err := testFrame.Build(in); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		rx.Deliver(in)
	}
	if n := f.Poll(); n != 3 {
		t.Fatalf("Poll = %d, want 3", n)
	}
	if len(tx.Recorded()) != 3 {
		t.Fatalf("sent %d frames, want 3", len(tx.Recorded()))
	}
	for _, s := range tx.Recorded() {
		eth, _, udp := decode(t, s.Frame)
		if [6]byte(eth.DstMAC) != dst || [6]byte(eth.SrcMAC) != src {
			t.Errorf("macs %v -> %v, want %x -> %x", eth.SrcMAC, eth.DstMAC, src, dst)
		}
		if udp.SrcPort != layers.UDPPort(testFrame.SrcPort) {
			t.Errorf("payload changed: source port %d", udp.SrcPort)
		}
	}
	if st := f.Stats(); st.Received != 3 || st.Forwarded != 3 || st.Dropped != 0 {
		t.Errorf("stats %+v, want 3 received and forwarded", st)
	}
	if rx.Free() != 64 {
		t.Errorf("rx free list has %d of 64 chunks: received frames were not released", rx.Free())
	}
}

func TestForwarderCountsDrops(t *testing.T) {
	rx, tx := newFakePort(t, 64, 2048), newFakePort(t, 2, 2048)
	f := newForwarder(rx, tx, [6]byte{}, [6]byte{})
	in := make([]byte, MinFrameLen)
	testFrame.Build(in)
	for range 5 {
		rx.Deliver(in)
	}
	f.Poll()
	if st := f.Stats(); st.Received != 5 || st.Forwarded != 2 || st.Dropped != 3 {
		t.Errorf("stats %+v, want 5 received, 2 forwarded, 3 dropped", st)
	}
	if rx.Free() != 64 {
		t.Errorf("rx free list has %d of 64 chunks", rx.Free())
	}
}

func TestForwarderPollAllocs(t *testing.T) {
	rx, tx := newFakePort(t, 256, 2048), newFakePort(t, 256, 2048)
	f := newForwarder(rx, tx, [6]byte{1}, [6]byte{2})
	in := make([]byte, MinFrameLen)
	testFrame.Build(in)
	batch := func() {
		for range fwdBatch {
			rx.Deliver(in)
		}
		f.Poll()
	}
	batch()
	if a := testing.AllocsPerRun(100, batch); a != 0 {
		t.Errorf("Poll allocates %v times per batch, want 0", a)
	}
}

// BenchmarkGeneratorStep measures the generator's own cost per batch on a
// fake socket: the ceiling its Go code puts on the offered load.
func BenchmarkGeneratorStep(b *testing.B) {
	for _, flows := range []int{1, 1024, 60000} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			p := newFakePort(b, 4096, 2048)
			g, err := newGenerator(p, testFrame, flows)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			frames := 0
			for b.Loop() {
				n, _ := g.Step()
				frames += n
			}
			// frames/s: frames the generator's code can prepare and queue
			// per second with a socket that costs nothing.
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkForwarderPoll measures the baseline forwarder's per-batch cost
// on fake sockets.
func BenchmarkForwarderPoll(b *testing.B) {
	for _, size := range []int{60, 1514} {
		b.Run(fmt.Sprintf("len=%d", size), func(b *testing.B) {
			rx, tx := newFakePort(b, 256, 2048), newFakePort(b, 256, 2048)
			f := newForwarder(rx, tx, [6]byte{1}, [6]byte{2})
			fr := testFrame
			fr.Len = size
			in := make([]byte, size)
			fr.Build(in)
			b.ReportAllocs()
			for b.Loop() {
				rx.DropReceived()
				for range fwdBatch {
					rx.Deliver(in)
				}
				f.Poll()
			}
			// frames/s: frames forwarded per second, fake rings included.
			b.ReportMetric(float64(b.N*fwdBatch)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestGeneratorManyFlows: past PortsPerSource flows the generator moves on
// to the next source address, and wraps back to the frame's own.
func TestGeneratorManyFlows(t *testing.T) {
	const flows = PortsPerSource + 100
	p := newFakePort(t, 64, 2048)
	p.Record = true
	g, err := newGenerator(p, testFrame, flows)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, b []byte) {
		t.Helper()
		_, ip, udp := decode(t, b)
		flow := i % flows
		wantSrc := testFrame.Src
		if flow >= PortsPerSource {
			wantSrc = FlowSources
		}
		if int(udp.SrcPort) != FirstSourcePort+flow%PortsPerSource || !ip.SrcIP.Equal(wantSrc.AsSlice()) {
			t.Fatalf("frame %d: from %s:%d, want %s:%d", i, ip.SrcIP, udp.SrcPort, wantSrc, FirstSourcePort+flow%PortsPerSource)
		}
	}
	sent := 0
	for sent < flows+200 {
		n, err := g.Step()
		if err != nil {
			t.Fatal(err)
		}
		rec := p.Recorded()
		// Check the frames around the address changes; decoding every
		// one would make the test slow for nothing.
		for i := sent; i < sent+n; i++ {
			if i < 3 || (i >= PortsPerSource-3 && i <= PortsPerSource+3) || i >= flows-3 {
				check(i, rec[i-sent].Frame)
			}
		}
		sent += n
		p.ResetRecorded()
	}
}

// TestGeneratorOpen: Open sends one frame of every flow.
func TestGeneratorOpen(t *testing.T) {
	p := newFakePort(t, 64, 2048)
	g, err := newGenerator(p, testFrame, 1000)
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Open(256)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued < 1000 || st.Queued >= 1000+genBatch || st.Sent != st.Queued {
		t.Errorf("Open queued %d, sent %d: want all 1000 flows once (a batch over at most)", st.Queued, st.Sent)
	}
}

// TestGeneratorOpenRange: OpenRange sends exactly the flows asked for,
// from any start, wrapping at the flow count.
func TestGeneratorOpenRange(t *testing.T) {
	p := newFakePort(t, 64, 2048)
	p.Record = true
	g, err := newGenerator(p, testFrame, 100)
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.OpenRange(90, 20, 8)
	if err != nil {
		t.Fatal(err)
	}
	rec := p.Recorded()
	if st.Queued != 20 || len(rec) != 20 {
		t.Fatalf("queued %d, recorded %d: want 20", st.Queued, len(rec))
	}
	for i, s := range rec {
		_, _, udp := decode(t, s.Frame)
		if want := FirstSourcePort + (90+i)%100; int(udp.SrcPort) != want {
			t.Errorf("frame %d: source port %d, want %d", i, udp.SrcPort, want)
		}
	}
}

// TestReplyGeneratorMatchesFlows: a reply generator's flow i goes to the
// address and port a forward generator's flow i comes from, past
// PortsPerSource flows too, from the reply frame's own source, with both
// checksums right.
func TestReplyGeneratorMatchesFlows(t *testing.T) {
	const flows = PortsPerSource + 100
	reply := Frame{SrcMAC: testFrame.DstMAC, DstMAC: testFrame.SrcMAC, Src: netip.MustParseAddr("198.18.1.2"), Dst: testFrame.Src,
		SrcPort: 8009, DstPort: FirstSourcePort, Len: MinFrameLen}
	fp, rp := newFakePort(t, 64, 2048), newFakePort(t, 64, 2048)
	fp.Record, rp.Record = true, true
	fwd, err := newGenerator(fp, testFrame, flows)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := newGenerator(rp, reply, flows)
	if err != nil {
		t.Fatal(err)
	}
	rep.setReply(reply)
	sent := 0
	for sent < flows+200 {
		n, err := fwd.Step()
		if err != nil {
			t.Fatal(err)
		}
		if m, err := rep.Step(); err != nil || m != n {
			t.Fatalf("reply generator queued %d (%v), forward %d", m, err, n)
		}
		fr, rr := fp.Recorded(), rp.Recorded()
		for i := sent; i < sent+n; i++ {
			if i >= 3 && (i < PortsPerSource-3 || i > PortsPerSource+3) && i < flows-3 {
				continue
			}
			_, fip, fudp := decode(t, fr[i-sent].Frame)
			_, rip, rudp := decode(t, rr[i-sent].Frame)
			if !rip.DstIP.Equal(fip.SrcIP) || rudp.DstPort != fudp.SrcPort || rip.SrcIP.String() != "198.18.1.2" || rudp.SrcPort != 8009 {
				t.Fatalf("flow %d: forward from %s:%d, reply %s:%d -> %s:%d", i, fip.SrcIP, fudp.SrcPort, rip.SrcIP, rudp.SrcPort, rip.DstIP, rudp.DstPort)
			}
		}
		sent += n
		fp.ResetRecorded()
		rp.ResetRecorded()
	}
}

// TestGeneratorIPv6: the generator sends the IPv6 frame, with its flows
// in the source port and, past PortsPerSource, in the low 32 bits of the
// source address, every frame's checksum right; and it does not allocate.
func TestGeneratorIPv6(t *testing.T) {
	const flows = PortsPerSource + 100
	p := newFakePort(t, 64, 2048)
	p.Record = true
	g, err := newGenerator(p, testFrame6, flows)
	if err != nil {
		t.Fatal(err)
	}
	check := func(i int, b []byte) {
		t.Helper()
		if len(b) != MinFrameLen6 {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(b), MinFrameLen6)
		}
		_, ip, udp := decode6(t, b)
		flow := i % flows
		wantSrc := testFrame6.Src
		if flow >= PortsPerSource {
			wantSrc = netip.MustParseAddr("2001:2::8000:0")
		}
		if int(udp.SrcPort) != FirstSourcePort+flow%PortsPerSource || !ip.SrcIP.Equal(wantSrc.AsSlice()) || !ip.DstIP.Equal(testFrame6.Dst.AsSlice()) {
			t.Fatalf("frame %d: %s:%d -> %s, want %s:%d -> %s", i, ip.SrcIP, udp.SrcPort, ip.DstIP, wantSrc, FirstSourcePort+flow%PortsPerSource, testFrame6.Dst)
		}
	}
	sent := 0
	for sent < flows+200 {
		n, err := g.Step()
		if err != nil {
			t.Fatal(err)
		}
		for i := sent; i < sent+n; i++ {
			if i < 3 || (i >= PortsPerSource-3 && i <= PortsPerSource+3) || i >= flows-3 {
				check(i, p.Recorded()[i-sent].Frame)
			}
		}
		sent += n
		p.ResetRecorded()
	}
	p.Record = false
	if a := testing.AllocsPerRun(100, func() { g.Step() }); a != 0 {
		t.Errorf("Step allocates %v times per batch, want 0", a)
	}
}

// TestReplyGeneratorIPv6: a reply generator's flows differ in the
// destination port and address, over IPv6 as over IPv4.
func TestReplyGeneratorIPv6(t *testing.T) {
	const flows = PortsPerSource + 2
	p := newFakePort(t, 64, 2048)
	p.Record = true
	f := testFrame6
	f.Src, f.Dst = f.Dst, f.Src
	g, err := newGenerator(p, f, flows)
	if err != nil {
		t.Fatal(err)
	}
	g.setReply(f)
	g.next = PortsPerSource - 1
	if _, err := g.step(3); err != nil {
		t.Fatal(err)
	}
	want := []string{"[2001:2::2]:65535", "[2001:2::8000:0]:1024", "[2001:2::8000:0]:1025"}
	for i, r := range p.Recorded() {
		_, ip, udp := decode6(t, r.Frame)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		if got := netip.AddrPortFrom(dst, uint16(udp.DstPort)).String(); got != want[i] || !ip.SrcIP.Equal(f.Src.AsSlice()) {
			t.Errorf("frame %d: %s -> %s, want %s -> %s", i, ip.SrcIP, got, f.Src, want[i])
		}
	}
}
