package director

import (
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/syncd"
	"github.com/afvs/afvs/vs"
)

// syncRig is a worker over a fake port with flows established in its
// table, for measuring the sync hook.
type syncRig struct {
	r     *rig
	p     *xsktest.Port
	w     *Worker
	acks  [][]byte
	flows int
}

func newSyncRig(b testing.TB, flows int) *syncRig {
	r := newRig(b, oneService(vs.Route, "rr", 1, 1, 1, 1), flows+flows/4)
	s := &syncRig{r: r, flows: flows}
	clients := flows/60000 + 1
	buf := make([]byte, 2048)
	for c := range clients {
		syn := tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, true, false, false, true, 0)
		s.acks = append(s.acks, tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18))
		for i := c * 60000; i < min(flows, (c+1)*60000); i++ {
			setSyncPort(syn, i)
			copy(buf[headroom:], syn)
			if v, _ := r.p.Process(r.snap, buf, headroom, len(syn)); v != dataplane.VerdictForward {
				b.Fatalf("opening flow %d: verdict %d", i, v)
			}
		}
	}
	s.p = newFakePort(b, 256)
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	s.w = NewWorker(0, -1, s.p, 0, []TxPort{{Port: s.p}}, &snap, r.p, r.c, nil)
	return s
}

func setSyncPort(f []byte, i int) {
	p := 1024 + i%60000
	f[34], f[35] = byte(p>>8), byte(p)
}

// batch delivers one batch of ACKs of random flows and polls the worker.
func (s *syncRig) batch(x *uint64) {
	for range dataplane.Batch {
		*x = *x*6364136223846793005 + 1442695040888963407
		i := int((*x >> 32) * uint64(s.flows) >> 32)
		f := s.acks[i/60000]
		setSyncPort(f, i)
		s.p.Deliver(f)
	}
	s.w.Poll()
	s.p.Complete()
}

// TestWorkerSyncAllocs: a worker batch with the sync hook on, records
// queued and drained, allocates nothing.
func TestWorkerSyncAllocs(t *testing.T) {
	s := newSyncRig(t, 1000)
	if err := s.r.ct.EnableSync(); err != nil {
		t.Fatal(err)
	}
	q, _ := ipvssync.NewQueue(8192)
	s.r.p.SetSync(&dataplane.SyncSink{Queue: q, Settings: ipvssync.Settings{Threshold: 1, Period: 4}})
	x := uint64(1)
	var rec ipvssync.Record
	var popped int
	if a := testing.AllocsPerRun(100, func() {
		s.batch(&x)
		for q.Pop(&rec) {
			popped++
		}
	}); a != 0 {
		t.Fatalf("%v allocs per batch with sync on", a)
	}
	if popped == 0 || q.Dropped() != 0 {
		t.Fatalf("popped %d records, dropped %d: the hook did not run as set", popped, q.Dropped())
	}
}

// spread sets every flow's sync word as if the flow had been counting
// for long, as established flows have: its packet count a pseudo-random
// number below period, last sent ESTABLISHED. Under sync_threshold "due
// period" a sync is then due at one packet in period, however many
// packets each flow gets while measured.
func (s *syncRig) spread(b testing.TB, period int) {
	ct := s.r.ct
	x := uint64(3)
	for i := range s.flows {
		k := conntrack.Key{
			CAddr: netip.AddrFrom4([4]byte{198, 18, byte(i / 60000), 10}).As16(), VAddr: vip.As16(),
			CPort: uint16(1024 + i%60000), VPort: 80, Proto: 6,
		}
		c, ok := ct.Lookup(&k)
		if !ok {
			b.Fatalf("flow %d: no entry", i)
		}
		_, raw, ok := ct.SyncInfo(&c)
		x = x*6364136223846793005 + 1442695040888963407
		info := conntrack.SyncInfo{Pkts: uint32((x >> 32) % uint64(period)), OldState: uint8(conntrack.Established), EndTime: ct.NowMillis() &^ 3}
		if !ok || !ct.SetSyncInfo(&c, raw, info) {
			b.Fatalf("flow %d: setting its sync word", i)
		}
	}
}

// BenchmarkWorkerSync measures a worker's per-frame cost (batches of 64
// ACKs of random established flows) with the sync hook off and on, on one
// table. Each iteration runs one batch with sync off and one with it on,
// timed separately, so that load from other processes falls on both
// alike. Every flow's sync word starts as an established flow's would
// (spread), so that under the kernel's default sync_threshold (3 50) a
// record is due at one frame in 50 at every table size and whatever the
// number of iterations.
//
// Only the worker's batches are timed. What the sender costs, and what
// it costs the worker, is the sender=... part:
//
//   - apart: this goroutine drains the queue after each batch with sync
//     on, outside the worker's timing, and times the drain on its own
//     (the sender's share), on the core that pushed, whose caches keep
//     the queue's lines;
//   - syncd: another goroutine drains it every syncd.SendDelay, as
//     syncd's master does, on whichever core it runs: the worker's timing
//     then includes what the sender's reads of the slots and the tail
//     cost it. The worker waits, untimed, while half the queue is
//     undrained, so that a late timer on a loaded machine cannot make it
//     drop records and skip their copies.
//
// due=all is apart with sync_threshold 0 1, which makes every frame due:
// a record queued at each, the hook's cost on the frames that send.
//
// Metrics: off-ns/frame and on-ns/frame, the worker's mean times, and
// on/off; med-on/off, the ratio of the median batch times, which a batch
// slowed by another process hardly moves; hook-ns/frame, the hook's cost
// to the worker per frame (the median of the iterations' differences, on
// less off); rec/frame, the records queued per frame; and, for apart,
// sender-ns/frame, the sender's mean time to pop them, per frame. The one
// allocation an iteration is SetSync's copy of the sink, outside the
// timed parts (TestWorkerSyncAllocs checks the worker's batches).
func BenchmarkWorkerSync(b *testing.B) {
	every := ipvssync.Settings{Threshold: 0, Period: 1}
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"1M", 1_000_000}} {
		var s *syncRig // one per size, for all its parts
		for _, part := range []struct {
			name   string
			set    ipvssync.Settings
			sender string
		}{
			{"sender=apart", ipvssync.DefaultSettings, "apart"},
			{"sender=syncd", ipvssync.DefaultSettings, "syncd"},
			{"due=all", every, "apart"},
		} {
			b.Run("entries="+size.name+"/"+part.name, func(b *testing.B) {
				if s == nil {
					s = newSyncRig(b, size.n)
					if err := s.r.ct.EnableSync(); err != nil {
						b.Fatal(err)
					}
				}
				s.spread(b, ipvssync.DefaultSettings.Period)
				benchWorkerSync(b, s, part.set, part.sender)
			})
		}
	}
}

// benchWorkerSync is one part of BenchmarkWorkerSync.
func benchWorkerSync(b *testing.B, s *syncRig, set ipvssync.Settings, sender string) {
	q, _ := ipvssync.NewQueue(syncd.QueueCapacity)
	sink := &dataplane.SyncSink{Queue: q, Settings: set}
	var popped atomic.Uint64
	done, exited := make(chan struct{}), make(chan struct{})
	switch sender {
	case "syncd":
		go func() {
			defer close(exited)
			var rec ipvssync.Record
			tick := time.NewTicker(syncd.SendDelay)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				n := uint64(0)
				for q.Pop(&rec) {
					n++
				}
				popped.Add(n)
			}
		}()
	default:
		close(exited)
	}
	xOff, xOn := uint64(1), uint64(2)
	var rec ipvssync.Record
	var off, on time.Duration
	const keep = 1 << 18
	offs, ons := make([]time.Duration, 0, keep), make([]time.Duration, 0, keep)
	var pops time.Duration
	tx := s.r.c.TX.Load()
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		s.batch(&xOff)
		t1 := time.Now()
		// Switching the sink on and off is the benchmark's, not the
		// worker's: it stays outside the timed parts.
		s.r.p.SetSync(sink)
		t2 := time.Now()
		s.batch(&xOn)
		t3 := time.Now()
		s.r.p.SetSync(nil)
		off += t1.Sub(t0)
		on += t3.Sub(t2)
		if sender == "apart" {
			n := uint64(0)
			t4 := time.Now()
			for q.Pop(&rec) {
				n++
			}
			pops += time.Since(t4)
			popped.Add(n)
		}
		if sender == "syncd" {
			// Wait, untimed, while the sender has half the queue to
			// drain: a timer late on a loaded machine must not make the
			// queue drop records, which would spare the worker their
			// copies.
			for q.Len() > q.Cap()/2 {
				runtime.Gosched()
			}
		}
		if len(offs) < cap(offs) {
			offs, ons = append(offs, t1.Sub(t0)), append(ons, t3.Sub(t2))
		}
	}
	close(done)
	<-exited
	for q.Pop(&rec) {
		popped.Add(1)
	}
	if got := s.r.c.TX.Load() - tx; got != uint64(2*b.N*dataplane.Batch) {
		b.Fatalf("%d of %d frames forwarded", got, 2*b.N*dataplane.Batch)
	}
	if q.Dropped() != 0 {
		b.Fatalf("%d records dropped: the sender fell behind", q.Dropped())
	}
	frames := float64(b.N * dataplane.Batch)
	b.ReportMetric(float64(off.Nanoseconds())/frames, "off-ns/frame")
	b.ReportMetric(float64(on.Nanoseconds())/frames, "on-ns/frame")
	b.ReportMetric(float64(on)/float64(off), "on/off")
	b.ReportMetric(float64(popped.Load())/frames, "rec/frame")
	if sender == "apart" {
		b.ReportMetric(float64(pops.Nanoseconds())/frames, "sender-ns/frame")
	}
	// The hook's own cost: the median of each iteration's difference, on
	// less off, which load on the machine moves less than either time
	// alone.
	diffs := make([]time.Duration, len(offs))
	for i := range offs {
		diffs[i] = ons[i] - offs[i]
	}
	slices.Sort(diffs)
	slices.Sort(offs)
	slices.Sort(ons)
	if n := len(offs); n > 0 {
		b.ReportMetric(float64(ons[n/2])/float64(offs[n/2]), "med-on/off")
		b.ReportMetric(float64(diffs[n/2].Nanoseconds())/float64(dataplane.Batch), "hook-ns/frame")
	}
}
