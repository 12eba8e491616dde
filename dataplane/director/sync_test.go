package director

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/ipvssync"
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

// BenchmarkWorkerSync measures a worker's per-frame cost (batches of 64
// ACKs of random established flows) with the sync hook off and on (the
// kernel's default sync_threshold, 3 50), on one table. Each iteration
// runs one batch with sync off and one with it on, timed separately, so
// that load from other processes falls on both alike; it reports both
// and their ratio (on/off), and the ratio of the median batch times
// (med-on/off), which a batch slowed by another process hardly moves,
// and the hook's cost per frame (hook-ns/frame: the median of the
// iterations' differences, on less off).
// With sync on the queued records are drained inside the timed part, so
// the sender's share is counted too.
func BenchmarkWorkerSync(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"1M", 1_000_000}} {
		b.Run("entries="+size.name, func(b *testing.B) {
			s := newSyncRig(b, size.n)
			if err := s.r.ct.EnableSync(); err != nil {
				b.Fatal(err)
			}
			q, _ := ipvssync.NewQueue(8192)
			sink := &dataplane.SyncSink{Queue: q, Settings: ipvssync.DefaultSettings}
			xOff, xOn := uint64(1), uint64(2)
			var rec ipvssync.Record
			var off, on time.Duration
			offs, ons := make([]time.Duration, 0, 1<<18), make([]time.Duration, 0, 1<<18)
			tx := s.r.c.TX.Load()
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				s.batch(&xOff)
				t1 := time.Now()
				// Switching the sink on and off is the benchmark's, not
				// the worker's: it stays outside the timed parts.
				s.r.p.SetSync(sink)
				t2 := time.Now()
				s.batch(&xOn)
				for q.Pop(&rec) {
				}
				t3 := time.Now()
				s.r.p.SetSync(nil)
				off += t1.Sub(t0)
				on += t3.Sub(t2)
				if len(offs) < cap(offs) {
					offs, ons = append(offs, t1.Sub(t0)), append(ons, t3.Sub(t2))
				}
			}
			if got := s.r.c.TX.Load() - tx; got != uint64(2*b.N*dataplane.Batch) {
				b.Fatalf("%d of %d frames forwarded", got, 2*b.N*dataplane.Batch)
			}
			if q.Dropped() != 0 {
				b.Fatalf("%d records dropped", q.Dropped())
			}
			frames := float64(b.N * dataplane.Batch)
			b.ReportMetric(float64(off.Nanoseconds())/frames, "off-ns/frame")
			b.ReportMetric(float64(on.Nanoseconds())/frames, "on-ns/frame")
			b.ReportMetric(float64(on)/float64(off), "on/off")
			// The hook's own cost: the median of each iteration's
			// difference, on less off, which load on the machine moves
			// less than either time alone.
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
		})
	}
}
