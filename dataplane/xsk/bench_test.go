package xsk

import (
	"fmt"
	"testing"
	"time"
)

// ringUnderTest is what the benchmarks drive, so that Socket and Baseline
// run the very same workload.
type ringUnderTest interface {
	FD() int
	Fill() int
	Receive([]Desc) int
	Release(uint64)
	Transmit([]Desc) int
	Kick() error
	Complete() int
	Close() error
}

// allocBatch gets up to len(out) frames the way each layer's users do.
func allocBatch(r ringUnderTest, out []uint64) int {
	switch r := r.(type) {
	case *Socket:
		for i := range out {
			addr, ok := r.Alloc()
			if !ok {
				return i
			}
			out[i] = addr
		}
		return len(out)
	case *Baseline:
		return r.AllocN(out)
	}
	panic("unknown ring layer")
}

func umemOf(r ringUnderTest, numFrames, frameSize int) []byte {
	switch r := r.(type) {
	case *Socket:
		return r.UMEM()
	case *Baseline:
		return r.Frame(Desc{Addr: 0, Len: uint32(numFrames * frameSize)})
	}
	panic("unknown ring layer")
}

type ringCase struct {
	name   string
	budget int
	open   func(ifindex int, opt Options) (ringUnderTest, error)
}

var ringCases = []ringCase{
	{"ring=asavie/budget=32", 0, func(ifindex int, opt Options) (ringUnderTest, error) {
		return OpenBaseline(ifindex, 0, opt)
	}},
	{"ring=own/budget=32", 0, func(ifindex int, opt Options) (ringUnderTest, error) {
		opt.Copy = true
		return Open(ifindex, 0, opt)
	}},
	{"ring=own/budget=256", 256, func(ifindex int, opt Options) (ringUnderTest, error) {
		opt.Copy, opt.TxBudget = true, 256
		return Open(ifindex, 0, opt)
	}},
}

const benchBatch = 64

// durHist is a fixed-bucket histogram of batch times. The paired
// benchmarks report medians from it, because on a shared two-core machine
// a batch that is preempted takes milliseconds instead of microseconds, and
// a handful of those would swamp a mean.
type durHist struct {
	width  time.Duration
	counts [4096]uint32 // the last bucket collects everything beyond
	n      int
}

func newDurHist(width time.Duration) *durHist { return &durHist{width: width} }

func (h *durHist) add(d time.Duration) {
	i := min(int(d/h.width), len(h.counts)-1)
	h.counts[i]++
	h.n++
}

// median returns the middle of the bucket holding the median batch.
func (h *durHist) median() time.Duration {
	seen := 0
	for i, c := range h.counts {
		seen += int(c)
		if 2*seen >= h.n {
			return time.Duration(i)*h.width + h.width/2
		}
	}
	return 0
}

// txRig is one ring layer set up for the transmit workload on its own
// veth pair, with every UMEM chunk holding a ready 60-byte frame.
type txRig struct {
	r     ringUnderTest
	addrs []uint64
	descs []Desc
}

// openOnPair makes a veth pair whose B end drops what it receives in XDP
// and opens rc's ring layer on its A end with the default options, closed
// when the benchmark ends.
func openOnPair(b *testing.B, rc ringCase) (*pair, ringUnderTest, Options) {
	p := newPair(b)
	attachDrop(b, p)
	opt := DefaultOptions()
	var r ringUnderTest
	var err error
	in(b, p.nsA, func() { r, err = rc.open(p.ifA, opt) })
	if err != nil {
		b.Fatalf("open: %v", err)
	}
	b.Cleanup(func() { r.Close() })
	return p, r, opt
}

func newTxRig(b *testing.B, rc ringCase) *txRig {
	p, r, opt := openOnPair(b, rc)
	umem := umemOf(r, opt.NumFrames, opt.FrameSize)
	for off := 0; off < len(umem); off += opt.FrameSize {
		writeTestFrame(umem[off:off+60], p.macB, p.macA, uint32(off/opt.FrameSize))
	}
	return &txRig{r: r, addrs: make([]uint64, benchBatch), descs: make([]Desc, benchBatch)}
}

// batch allocates, transmits, and kicks and reaps until all are complete.
func (g *txRig) batch(b *testing.B) {
	r := g.r
	n := allocBatch(r, g.addrs)
	for i, a := range g.addrs[:n] {
		g.descs[i] = Desc{Addr: a, Len: 60}
	}
	q := r.Transmit(g.descs[:n])
	for _, d := range g.descs[q:n] {
		r.Release(d.Addr)
	}
	for done := 0; done < q; {
		if err := r.Kick(); err != nil {
			b.Fatalf("kick: %v", err)
		}
		done += r.Complete()
	}
}

// BenchmarkTransmitCompletePaired runs the transmit workload of
// BenchmarkTransmitComplete on both ring layers in the same loop,
// alternating batch by batch, so that load from the rest of the machine
// falls on both alike. One op is one batch on each layer.
func BenchmarkTransmitCompletePaired(b *testing.B) {
	for _, budget := range []int{32, 256} {
		b.Run(fmt.Sprintf("budget=%d", budget), func(b *testing.B) {
			own := newTxRig(b, ringCases[1])
			if budget == 256 {
				own = newTxRig(b, ringCases[2])
			}
			base := newTxRig(b, ringCases[0])
			runPaired(b, 100*time.Nanosecond, func() { own.batch(b) }, func() { base.batch(b) }, nil)
		})
	}
}

// runPaired times own and base one batch each per op, alternating which
// goes first, so that load from the rest of the machine falls on both
// alike, and reports each one's median batch time (reportPaired). prepare,
// if not nil, runs untimed before each pair. bucket is the resolution of
// the timing histograms.
func runPaired(b *testing.B, bucket time.Duration, own, base, prepare func()) {
	hs := [2]*durHist{newDurHist(bucket), newDurHist(bucket)}
	steps := [2]func(){own, base}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if prepare != nil {
			prepare()
		}
		first, second := i%2, 1-i%2
		t0 := time.Now()
		steps[first]()
		tm := time.Now()
		steps[second]()
		hs[first].add(tm.Sub(t0))
		hs[second].add(time.Since(tm))
	}
	reportPaired(b, hs[0], hs[1])
}

// reportPaired reports the median batch time of each layer and their
// ratio.
func reportPaired(b *testing.B, own, base *durHist) {
	// own-ns/batch and asavie-ns/batch: median wall time of one batch of
	// 64 on each layer; asavie/own: their ratio (above 1 means the own
	// layer is faster).
	b.ReportMetric(float64(own.median().Nanoseconds()), "own-ns/batch")
	b.ReportMetric(float64(base.median().Nanoseconds()), "asavie-ns/batch")
	b.ReportMetric(float64(base.median())/float64(own.median()), "asavie/own")
}

// BenchmarkTransmitComplete measures one batch of 64 minimum-size frames:
// allocate, transmit, kick, and kick and reap until all 64 are complete.
// The peer drops them in XDP. One op is one batch.
func BenchmarkTransmitComplete(b *testing.B) {
	for _, rc := range ringCases {
		b.Run(rc.name, func(b *testing.B) {
			g := newTxRig(b, rc)
			b.ReportAllocs()
			for b.Loop() {
				g.batch(b)
			}
			// frames/s: minimum-size frames sent and reaped per second.
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// rxRig is one ring layer receiving on its own veth pair. Its generator
// is a TX-only Socket on the peer that sends bursts on demand, outside the
// timed part, so the timed part is the ring layer's own work: take a batch
// from the RX ring, release it, refill the fill ring. The veth delivers a
// copy-mode transmission within the sendto, so after a burst completes the
// frames wait in the RX ring.
type rxRig struct {
	r     ringUnderTest
	gen   *Socket
	batch []Desc
	out   []Desc
}

func newRxRig(b *testing.B, rc ringCase) *rxRig {
	// Frames forwarded back to B end in an XDP_DROP there rather than in
	// B's stack.
	p, r, _ := openOnPair(b, rc)
	attachRedirect(b, p, r.FD())
	r.Fill()

	gopt := DefaultOptions()
	gopt.RxSize, gopt.Copy, gopt.TxBudget = 0, true, 512
	var g *Socket
	var err error
	in(b, p.nsB, func() { g, err = Open(p.ifB, 0, gopt) })
	if err != nil {
		b.Fatalf("open generator: %v", err)
	}
	b.Cleanup(func() { g.Close() })
	umem := g.UMEM()
	for off := 0; off < len(umem); off += gopt.FrameSize {
		writeTestFrame(umem[off:off+60], p.macA, p.macB, uint32(off/gopt.FrameSize))
	}
	return &rxRig{r: r, gen: g, batch: make([]Desc, benchBatch), out: make([]Desc, 0, 512)}
}

// pending is how many received frames wait in the RX ring.
func (g *rxRig) pending() int {
	switch r := g.r.(type) {
	case *Socket:
		return int(r.rx.avail(r.rx.size))
	case *Baseline:
		return r.x.NumReceived()
	}
	panic("unknown ring layer")
}

// top sends frames from the generator until the RX ring holds at least
// want; it fails the benchmark if the frames do not arrive.
func (g *rxRig) top(b *testing.B, want int) {
	for tries := 0; g.pending() < want; tries++ {
		if tries > 100 {
			b.Fatalf("rx ring holds %d frames after 100 bursts, want %d", g.pending(), want)
		}
		for sent := 0; sent < want-g.pending(); {
			out := g.out[:0]
			for len(out) < cap(out) && sent+len(out) < want {
				addr, ok := g.gen.Alloc()
				if !ok {
					break
				}
				out = append(out, Desc{Addr: addr, Len: 60})
			}
			q := g.gen.Transmit(out)
			for _, d := range out[q:] {
				g.gen.Release(d.Addr)
			}
			sent += q
			for g.gen.Account().Tx > 0 {
				g.gen.Kick()
				g.gen.Complete()
			}
		}
	}
}

// receive takes one batch of 64 frames, releases them and refills.
func (g *rxRig) receive(b *testing.B) {
	r := g.r
	for got := 0; got < benchBatch; {
		k := r.Receive(g.batch[:benchBatch-got])
		if k == 0 {
			b.Fatalf("rx ring ran dry after %d of %d frames", got, benchBatch)
		}
		for _, d := range g.batch[:k] {
			r.Release(d.Addr)
		}
		got += k
	}
	r.Fill()
}

// rxBurst is how many frames a refill puts in the 2048-slot RX ring.
const rxBurst = 1984

// BenchmarkReceiveRefillPaired measures one batch of 64 frames taken from
// a loaded RX ring: receive, release, refill. It alternates the two layers
// batch by batch and times each batch, so that load from the rest of the
// machine falls on both alike; ns/op also includes the generator bursts
// that reload the RX rings, the per-layer metrics do not.
func BenchmarkReceiveRefillPaired(b *testing.B) {
	own := newRxRig(b, ringCases[1])
	base := newRxRig(b, ringCases[0])
	own.top(b, rxBurst)
	base.top(b, rxBurst)
	runPaired(b, 10*time.Nanosecond, func() { own.receive(b) }, func() { base.receive(b) }, func() {
		own.refillIfLow(b)
		base.refillIfLow(b)
	})
}

// refillIfLow reloads the RX ring with a generator burst when less than a
// batch is pending.
func (g *rxRig) refillIfLow(b *testing.B) {
	if g.pending() < benchBatch {
		g.top(b, rxBurst)
	}
}

// forward is the director's cycle on one socket: take a batch of 64 from
// the RX ring, send the same frames back out, kick, reap completions and
// refill. It leaves frames in flight across batches, as a worker does.
func (g *rxRig) forward(b *testing.B) {
	r := g.r
	got := 0
	for got < benchBatch {
		k := r.Receive(g.batch[got:benchBatch])
		if k == 0 {
			b.Fatalf("rx ring ran dry after %d of %d frames", got, benchBatch)
		}
		got += k
	}
	q := r.Transmit(g.batch[:got])
	for _, d := range g.batch[q:got] {
		r.Release(d.Addr)
	}
	if err := r.Kick(); err != nil {
		b.Fatalf("kick: %v", err)
	}
	r.Complete()
	r.Fill()
}

// BenchmarkForwardPaired measures forward on both layers, alternating
// batch by batch, and reports each layer's median batch time. Unlike the
// receive benchmark, frames are spread over the fill, RX, TX and
// completion rings, which is where a free-frame scan costs.
func BenchmarkForwardPaired(b *testing.B) {
	for _, rcs := range [][2]ringCase{{ringCases[1], ringCases[0]}, {ringCases[2], ringCases[0]}} {
		b.Run("own"+rcs[0].name[len("ring=own"):], func(b *testing.B) {
			own := newRxRig(b, rcs[0])
			base := newRxRig(b, rcs[1])
			own.top(b, rxBurst)
			base.top(b, rxBurst)
			runPaired(b, 100*time.Nanosecond, func() { own.forward(b) }, func() { base.forward(b) }, func() {
				own.refillIfLow(b)
				base.refillIfLow(b)
			})
		})
	}
}
