package director

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// slotResolver puts every real server on-link behind one slot.
type slotResolver struct {
	dataplane.StaticResolver
	slot int
}

func (r slotResolver) Route(dst netip.Addr) (dataplane.Route, error) {
	return dataplane.Route{Slot: r.slot, NextHop: dst}, nil
}

// routeTo is r's snapshot rebuilt with every real server behind slot
// out, an interface eth1 added as slot 1: new connections and the frames
// of established ones (which find their server by ID) both leave there.
// The registry is r's, so every server keeps its ID.
func routeTo(r *rig, out int) *dataplane.Snapshot {
	s, err := dataplane.Build(r.tbl, dataplane.BuildOptions{Registry: r.reg, Loads: r.loads, Resolver: slotResolver{slot: out}, Prev: r.snap,
		Ifaces: []dataplane.Iface{
			{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr},
			{Slot: 1, Index: 2, Name: "eth1", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500, Addr: [4]byte{198, 18, 1, 1}},
		}})
	if err != nil {
		panic(err)
	}
	return s
}

// crossPair is two workers, one per receiving interface (slots 0 and 1),
// each sending every frame it receives out of the other's receiving
// socket, as a director with two receiving interfaces sets them up.
type crossPair struct {
	w     [2]*Worker
	ports [2]*xsktest.Port
	rigs  [2]*rig
}

func newCrossPair(t testing.TB, flows int) *crossPair {
	cp := &crossPair{}
	var mu [2]sync.Mutex
	for i := range 2 {
		cp.ports[i] = newFakePort(t, 256)
	}
	for i := range 2 {
		r := newRig(t, oneService(vs.Route, "rr", 1, 1), flows+flows/4+1024)
		other := 1 - i
		tx := make([]TxPort, 2)
		tx[i] = TxPort{Port: cp.ports[i]}
		tx[other] = TxPort{Port: cp.ports[other], Mu: &mu[other]}
		var snap atomic.Pointer[dataplane.Snapshot]
		snap.Store(routeTo(r, other))
		cp.w[i] = NewWorker(0, -1, sharedPort{cp.ports[i], &mu[i]}, i, tx, &snap, r.p, r.c, nil)
		cp.rigs[i] = r
	}
	return cp
}

// TestWorkersSendOnEachOthersSockets runs two workers at once, each
// sending everything it receives out of the other's receiving socket (the
// two directions of VS/NAT in the two-interface layout): every frame goes
// out once, of the right socket, nothing is dropped, the workers never
// block each other for good, and every frame ends free.
func TestWorkersSendOnEachOthersSockets(t *testing.T) {
	cp := newCrossPair(t, 0)
	const rounds = 300
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := [4]byte{198, 18, byte(i), 10}
			for n := range rounds {
				for k := range 16 {
					cp.ports[i].Deliver(tcpFrame(t, src, uint16(1024+(n*16+k)%4096), true, false, false, true, 0))
				}
				cp.w[i].Poll()
			}
		}()
	}
	wg.Wait()
	for i := range 2 {
		cp.w[i].Poll() // reaps what the other worker sent on its socket
		c := cp.rigs[i].c
		if c.TX.Load() != rounds*16 || c.RX.Load() != rounds*16 {
			t.Errorf("worker %d: rx %d tx %d, want %d each", i, c.RX.Load(), c.TX.Load(), rounds*16)
		}
		for r := range dataplane.NumDrops {
			if n := c.Drops[r].Load(); n != 0 {
				t.Errorf("worker %d: %d drops as %s", i, n, dataplane.Drop(r))
			}
		}
		if cp.ports[i].InFlight() != 0 || cp.ports[i].Free() != 256 {
			t.Errorf("port %d: %d in flight, %d of 256 free", i, cp.ports[i].InFlight(), cp.ports[i].Free())
		}
	}
}

// BenchmarkCrossTX compares, per frame of established flows, a worker
// sending out of its own receiving socket (same) with one sending out of
// another receiving interface's socket (cross: the frame is copied into
// that socket's UMEM under its lock, and the worker's own socket is
// called through its lock, as with two receiving interfaces). The two run
// in interleaved rounds of 16 batches, and each keeps its fastest round,
// so that a loaded machine's noise hits both alike. The kernel's work per
// frame is in neither: the ports are in memory.
func BenchmarkCrossTX(b *testing.B) {
	const flows = 1000
	acks := tcpFrame(b, [4]byte{198, 18, 0, 10}, 0, false, true, false, true, 18)
	establish := func(r *rig, s *dataplane.Snapshot) {
		buf := make([]byte, 2048)
		for i := range flows {
			f := tcpFrame(b, [4]byte{198, 18, 0, 10}, uint16(1024+i), true, false, false, true, 0)
			copy(buf[headroom:], f)
			if v, _ := r.p.Process(s, buf, headroom, len(f)); v != dataplane.VerdictForward {
				b.Fatalf("opening flow %d: verdict %d", i, v)
			}
		}
	}
	type path struct {
		w   *Worker
		in  *xsktest.Port
		out []*xsktest.Port
		c   *dataplane.Counters
	}
	r := newRig(b, oneService(vs.Route, "rr", 1, 1), 4*flows)
	establish(r, r.snap)
	p := newFakePort(b, 256)
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	same := path{NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &snap, r.p, r.c, nil), p, []*xsktest.Port{p}, r.c}
	cp := newCrossPair(b, 4*flows)
	establish(cp.rigs[0], routeTo(cp.rigs[0], 1))
	cross := path{cp.w[0], cp.ports[0], []*xsktest.Port{cp.ports[0], cp.ports[1]}, cp.rigs[0].c}

	const batches = 16
	x := uint64(1)
	round := func(pt path) time.Duration {
		start := time.Now()
		for range batches {
			for range dataplane.Batch {
				x = x*6364136223846793005 + 1442695040888963407
				port := 1024 + int((x>>32)*flows>>32)
				acks[34], acks[35] = byte(port>>8), byte(port)
				pt.in.Deliver(acks)
			}
			pt.w.Poll()
			for _, o := range pt.out {
				o.Complete()
			}
		}
		return time.Since(start)
	}
	paths := [2]path{same, cross}
	var tx0 [2]uint64
	for i, pt := range paths {
		tx0[i] = pt.c.TX.Load()
	}
	best := [2]time.Duration{math.MaxInt64, math.MaxInt64}
	b.ReportAllocs()
	for b.Loop() {
		for i, pt := range paths {
			best[i] = min(best[i], round(pt))
		}
	}
	for i, pt := range paths {
		if got := pt.c.TX.Load() - tx0[i]; got != uint64(b.N*batches*dataplane.Batch) {
			b.Fatalf("path %d: %d of %d frames sent", i, got, b.N*batches*dataplane.Batch)
		}
	}
	ns := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / (batches * dataplane.Batch) }
	b.ReportMetric(ns(best[0]), "same-ns/frame")
	b.ReportMetric(ns(best[1]), "cross-ns/frame")
	b.ReportMetric(ns(best[1])/ns(best[0]), "cross/same")
}

// TestCrossTXAllocs: sending out of another receiving interface's socket
// allocates nothing per batch.
func TestCrossTXAllocs(t *testing.T) {
	cp := newCrossPair(t, 0)
	frames := make([][]byte, dataplane.Batch)
	for i := range frames {
		cp.ports[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), true, false, false, true, 0))
		frames[i] = tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), false, true, false, true, 0)
	}
	cp.w[0].Poll()
	allocs := testing.AllocsPerRun(200, func() {
		for _, f := range frames {
			cp.ports[0].Deliver(f)
		}
		cp.w[0].Poll()
		cp.ports[1].Complete()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of %d frames", allocs, dataplane.Batch)
	}
	if tx := cp.rigs[0].c.TX.Load(); tx != 202*dataplane.Batch {
		t.Fatalf("%d frames sent, want %d", tx, 202*dataplane.Batch)
	}
}

// TestRouteToMovesEstablishedFlows: with routeTo's snapshot, a flow's
// first frame and its later ones (whose real server is found by ID, not
// through the service's list) both leave by slot 1, the cross-interface
// path the benchmarks that use routeTo mean to measure.
func TestRouteToMovesEstablishedFlows(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1, 1), 1<<12)
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(routeTo(r, 1))
	in, out := newFakePort(t, 256), newFakePort(t, 256)
	w := NewWorker(0, -1, in, 0, []TxPort{{Port: in}, {Port: out}}, &snap, r.p, r.c, nil)
	for i, syn := range []bool{true, false, false} {
		in.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, syn, !syn, false, true, 0))
		w.Poll()
		if got := out.Transmitted(); got != i+1 || in.Transmitted() != 0 {
			t.Fatalf("after frame %d: %d sent by slot 1 and %d by slot 0, want %d and 0", i+1, got, in.Transmitted(), i+1)
		}
		out.Complete()
	}
}
