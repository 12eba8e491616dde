package director

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// parallelWorker is one worker of BenchmarkTwoWorkers with its own port,
// processor, counters and frame templates, over the shared table.
type parallelWorker struct {
	w  *Worker
	p  *xsktest.Port
	c  *dataplane.Counters
	in *injector // this worker's flows, those i with i%n == k
	// live, when set, is the table's clock, which this worker moves with
	// the wall clock (see tick).
	live *liveClock
	// The workers' parallelWorkers are small allocations, likely side by
	// side: padding keeps each on lines of its own, so that one worker's
	// writes do not take the other's fields out of its cache.
	_ [64]byte
}

// threadCPU is the CPU time the calling OS thread has used, as the
// scheduler counts it (clock_gettime(CLOCK_THREAD_CPUTIME_ID), which adds
// the running slice so far); the caller must be locked to its thread.
// getrusage(RUSAGE_THREAD) is no substitute: its total is the runtime as of
// the thread's last scheduler accounting, up to a tick before the call, and
// its tick-sampled split into user and system time, kept monotonic, can
// hand back an older total still; over one phase of a few hundred
// milliseconds that is an error of a few percent at each end.
func threadCPU() time.Duration {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// batches runs n batches: 64 frames of this worker's established flows,
// one Poll.
func (pw *parallelWorker) batches(n int) {
	for range n {
		if pw.live != nil {
			pw.live.tick()
		}
		pw.in.batch(pw.p)
		pw.w.Poll()
		pw.p.Complete()
	}
}

// liveClock moves a table's manual clock with the wall clock, a
// millisecond at a time, as the daemon's coarse system clock moves: a
// benchmark whose table time stands still never refreshes an expiry,
// which a director's live traffic does.
type liveClock struct {
	clk   *conntrack.ManualClock
	start time.Time
	last  time.Duration
}

// tick sets the clock to the whole milliseconds since start, writing it
// only when that changed, as the system clock's goroutine does.
func (l *liveClock) tick() {
	if d := time.Since(l.start).Truncate(time.Millisecond); d != l.last {
		l.last = d
		l.clk.Set(d)
	}
}

// BenchmarkTwoWorkers measures one worker alone, then two workers on two
// goroutines locked to their threads at once, each with its own
// in-memory port, processor and counters, over one shared connection
// table of established flows (each worker's flows its own, as RSS would
// spread them). It reports both rates in ns per frame of the aggregate
// and their ratio, speedup, from the same run: 2 means no contention
// between the workers. On a machine with fewer than two idle CPUs the
// two workers share one and the ratio says little; so each phase also
// reports the CPU time its worker threads used per frame (cpu-ns/frame-1w,
// cpu-ns/frame-2w), and their ratio, efficiency: 1 means that a frame
// costs a worker as much CPU beside another worker as alone, which is what
// cache lines bouncing between the two would break, when they run at the
// same time (corun: the share of their time they surely did).
//
// Two variants at 1M flows take one thing away each, to tell what the
// workers contend for there: writes=none opens every flow with eight
// ACKs, so that its packet count is past what the table counts and a
// measured frame writes nothing to the table; tables=2 gives the second
// worker of the pair its own copy of the table, so the two share no
// table line at all. A third, clock=live, adds something: the table's
// clock, which otherwise stands still, moves with the wall clock (one
// worker of each phase moves it, a millisecond at a time), so that the
// frames refresh expiries as live traffic does.
func BenchmarkTwoWorkers(b *testing.B) {
	for _, v := range []struct {
		name   string
		n      int
		acks   int // ACKs each flow sees before the clock starts
		tables int // 2: the pair's second worker has its own copy of the table
		live   bool
	}{
		{"entries=1K", 1_000, 1, 1, false},
		{"entries=1M", 1_000_000, 1, 1, false},
		{"entries=1M-writes=none", 1_000_000, 8, 1, false},
		{"entries=1M-tables=2", 1_000_000, 1, 2, false},
		{"entries=1M-clock=live", 1_000_000, 1, 1, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			clients := v.n/60000 + 1
			syns := make([][]byte, clients)
			acks := make([][]byte, clients)
			for c := range clients {
				syns[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, true, false, false, true, 0)
				acks[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18)
			}
			rigs := make([]*rig, v.tables)
			snaps := make([]atomic.Pointer[dataplane.Snapshot], v.tables)
			for t := range rigs {
				rigs[t] = openEstablished(b, v.n, v.acks, syns, acks)
				snaps[t].Store(rigs[t].snap)
			}
			mk := func(t, k, n int) *parallelWorker {
				c := new(dataplane.Counters)
				proc := dataplane.NewProcessor(rigs[t].ct, c, 0)
				p := newFakePort(b, 256)
				pw := &parallelWorker{w: NewWorker(k, -1, p, 0, []TxPort{{Port: p}}, &snaps[t], proc, c, nil), p: p, c: c,
					in: newInjector(b, acks, v.n, k, n, uint64(k+1))}
				return pw
			}
			one := mk(0, 0, 1)
			two0 := mk(0, 0, 2)
			two1 := mk(v.tables-1, 1, 2)
			if v.live {
				l := &liveClock{clk: rigs[0].clock, start: time.Now()}
				one.live, two0.live = l, l // one phase after the other
			}
			ph := twoPhases(b, one.batches, [2]func(int){two0.batches, two1.batches})
			n := b.N
			frames := uint64(n * dataplane.Batch)
			if one.c.TX.Load() != frames || two0.c.TX.Load() != frames || two1.c.TX.Load() != frames {
				b.Fatalf("forwarded %d (one worker), %d and %d (two), want %d each", one.c.TX.Load(), two0.c.TX.Load(), two1.c.TX.Load(), frames)
			}
			for _, r := range rigs {
				if a, in := destConns(r.loads); a != v.n || in != 0 {
					b.Fatalf("after the run: %d active and %d inactive connections, want %d active: a measured frame changed a state", a, in, v.n)
				}
			}
			ph.report(b, frames)
		})
	}
}

// openEstablished makes a rig whose table holds n ESTABLISHED flows, flow
// i being client 198.18.<i/60000>.10, port 1024 + i%60000, to vip:80
// (syns and acks are each client's frames); each flow sees its SYN and
// then acks ACKs.
//
// A flow left in SYN_RECV would make its first measured ACK a state
// change, which moves the real server's counters from inactive to
// active: two workers would write the same load words, and the phase
// that happened to meet more first ACKs (the first, at 1M flows) would do
// more work per frame than the other.
func openEstablished(b testing.TB, n, acks int, syns, ackFrames [][]byte) *rig {
	// Headroom as in BenchmarkWorkerPoll: an established flow is never
	// evicted, so a flow whose two buckets are full could not be opened.
	capacity := n + n/4
	if n < 100_000 {
		capacity = 2 * n
	}
	r := newRig(b, oneService(vs.Route, "rr", 1, 1, 1, 1), capacity)
	buf := make([]byte, 2048)
	for i := range n {
		pt := 1024 + i%60000
		for j := range 1 + acks {
			f := syns[i/60000]
			if j > 0 {
				f = ackFrames[i/60000]
			}
			f[34], f[35] = byte(pt>>8), byte(pt)
			copy(buf[headroom:], f)
			if v, _ := r.p.Process(r.snap, buf, headroom, len(f)); v != dataplane.VerdictForward {
				b.Fatalf("opening flow %d, frame %d: verdict %d", i, j, v)
			}
		}
	}
	if a, in := destConns(r.loads); a != n || in != 0 {
		b.Fatalf("after opening %d flows: %d active and %d inactive connections, want all active", n, a, in)
	}
	return r
}

// destConns sums the active and inactive connections of every real server.
func destConns(l *sched.Loads) (active, inactive int) {
	for id := range uint32(l.Len()) {
		active += int(l.Active(id))
		inactive += int(l.Inactive(id))
	}
	return active, inactive
}

// phases is what twoPhases measured.
type phases struct {
	t1, t2 time.Duration // wall time: one worker, two at once
	c1, c2 time.Duration // CPU time of the worker threads in each phase
}

// twoPhases runs b.N batches of one worker on the benchmark goroutine,
// then b.N batches of each of two workers on two goroutines at once, every
// worker locked to its OS thread, and times each phase by the wall clock
// and by its threads' CPU time.
func twoPhases(b *testing.B, one func(n int), two [2]func(n int)) phases {
	var ph phases
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := threadCPU()
	for b.Loop() {
		// b.Loop times the whole; the two phases are timed apart.
		s := time.Now()
		one(1)
		ph.t1 += time.Since(s)
	}
	ph.c1 = threadCPU() - c
	n := b.N
	var wg sync.WaitGroup
	var c2 atomic.Int64
	start := make(chan struct{})
	for _, f := range two {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			<-start
			c := threadCPU()
			f(n)
			c2.Add(int64(threadCPU() - c))
		}()
	}
	s := time.Now()
	close(start)
	wg.Wait()
	ph.t2 = time.Since(s)
	ph.c2 = time.Duration(c2.Load())
	return ph
}

// report reports the phases' rates over frames per worker, and their
// ratios: speedup by the wall clock, efficiency by CPU time.
func (ph phases) report(b *testing.B, frames uint64) {
	b.ReportMetric(float64(ph.t1.Nanoseconds())/float64(frames), "ns/frame-1w")
	b.ReportMetric(float64(ph.t2.Nanoseconds())/float64(2*frames), "ns/frame-2w")
	b.ReportMetric(2*float64(ph.t1)/float64(ph.t2), "speedup")
	b.ReportMetric(float64(ph.c1.Nanoseconds())/float64(frames), "cpu-ns/frame-1w")
	b.ReportMetric(float64(ph.c2.Nanoseconds())/float64(2*frames), "cpu-ns/frame-2w")
	b.ReportMetric(2*float64(ph.c1)/float64(ph.c2), "efficiency")
	// The two workers ran at the same time for at least c2-t2 of the
	// wall time; corun is that as a share of one worker's CPU time. Near
	// 0, the machine ran them one after the other, and efficiency cannot
	// show lines they would contend for.
	b.ReportMetric(max(0, float64(ph.c2-ph.t2))/(float64(ph.c2)/2), "corun")
}

// BenchmarkTwoWorkersNewConns is BenchmarkTwoWorkers for new connections:
// every frame is the SYN of a flow never seen, as in
// BenchmarkWorkerNewConns, scheduled (rr over four real servers) and
// inserted into one shared table of 1M connections that is at capacity,
// so each insert evicts. The workers' flows are disjoint. What the two
// workers share here is written on every connection: the table's
// capacity count, its stats, the scheduler and the real servers' load
// counters.
func BenchmarkTwoWorkersNewConns(b *testing.B) {
	const n = 1_000_000
	r := newRig(b, oneService(vs.Route, "rr", 1, 1, 1, 1), n+n/4)
	g := newNewConnFrames(b, 0)
	buf := make([]byte, 2048)
	for range n + n/4 {
		f := g.next()
		copy(buf[headroom:], f)
		if v, _ := r.p.Process(r.snap, buf, headroom, len(f)); v != dataplane.VerdictForward {
			b.Fatalf("opening flow %d: verdict %d", g.k, v)
		}
	}
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	type nw struct {
		w *Worker
		p *xsktest.Port
		c *dataplane.Counters
		g *newConnFrames
	}
	mk := func(first int) *nw {
		c := new(dataplane.Counters)
		p := newFakePort(b, 256)
		return &nw{w: NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &snap, dataplane.NewProcessor(r.ct, c, 0), c, nil), p: p, c: c, g: newNewConnFrames(b, first)}
	}
	// Flow numbers far apart: each worker's flows are its own.
	one, two0, two1 := mk(2_000_000), mk(2_600_000_000), mk(5_200_000_000)
	run := func(x *nw) func(int) {
		return func(k int) {
			for range k {
				for range dataplane.Batch {
					x.p.Deliver(x.g.next())
				}
				x.w.Poll()
				x.p.Complete()
			}
		}
	}
	ph := twoPhases(b, run(one), [2]func(int){run(two0), run(two1)})
	frames := uint64(b.N * dataplane.Batch)
	if one.c.TX.Load() != frames || two0.c.TX.Load() != frames || two1.c.TX.Load() != frames {
		b.Fatalf("forwarded %d (one worker), %d and %d (two), want %d each; table full: %d, %d, %d; %s", one.c.TX.Load(), two0.c.TX.Load(), two1.c.TX.Load(), frames,
			one.c.Drops[dataplane.DropTableFull].Load(), two0.c.Drops[dataplane.DropTableFull].Load(), two1.c.Drops[dataplane.DropTableFull].Load(), r.ct.Stats())
	}
	ph.report(b, frames)
}
