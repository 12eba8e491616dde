package sched

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentRebuild runs every scheduler the way the dataplane does:
// workers pick and bind/unbind through the shared Loads while the control
// plane rebuilds the service with Prev and publishes it atomically. Picks
// must stay in range of the scheduler that made them; -race checks the rest.
func TestConcurrentRebuild(t *testing.T) {
	for _, name := range Names() {
		t.Run("sched="+name, func(t *testing.T) {
			var clock atomic.Int64
			opt := Options{MaglevSize: 251, Now: func() time.Duration { return time.Duration(clock.Load()) }}
			loads := NewLoads(64)
			dests := func(rng *rand.Rand) []Dest {
				ds := make([]Dest, 0, 32)
				for id := range 64 {
					if rng.IntN(2) == 0 {
						ds = append(ds, Dest{ID: uint32(id), Weight: int32(rng.IntN(4)), Upper: uint32(rng.IntN(3) * 5)})
					}
				}
				return ds
			}
			rng := rand.New(rand.NewPCG(1, 1))
			first := dests(rng)
			s0, err := New(name, first, 0, loads, opt)
			if err != nil {
				t.Fatal(err)
			}
			type published struct {
				s Scheduler
				n int
			}
			var cur atomic.Pointer[published]
			var stop atomic.Bool
			cur.Store(&published{s0, len(first)})
			var wg sync.WaitGroup
			for w := range 3 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 2))
					var f Flow
					var bound []uint32
					for i := 0; i < 2000 || !stop.Load(); i++ {
						p := cur.Load()
						f.CAddr[15] = byte(r.IntN(256))
						f.VAddr[15] = byte(r.IntN(32))
						got := p.s.Schedule(&f)
						if got < -1 || got >= p.n {
							t.Errorf("pick %d out of range for %d dests", got, p.n)
							return
						}
						if got >= 0 && len(bound) < 200 {
							id := p.s.(interface{ destID(int) uint32 }).destID(got)
							loads.Bind(id, true)
							bound = append(bound, id)
						} else if len(bound) > 0 {
							loads.Unbind(bound[len(bound)-1], true)
							bound = bound[:len(bound)-1]
						}
						clock.Add(int64(time.Second))
					}
				})
			}
			defer func() { stop.Store(true); wg.Wait() }()
			for range 20 {
				runtime.Gosched()
				ds := dests(rng)
				o := opt
				o.Prev = cur.Load().s
				s, err := New(name, ds, 0, loads, o)
				if err != nil {
					t.Fatal(err)
				}
				cur.Store(&published{s, len(ds)})
			}
			stop.Store(true)
			wg.Wait()
			// Quiescent again: the last tree must agree with the scan.
			if lc, ok := cur.Load().s.(*LeastConn); ok {
				if got, want := lc.t.best(), lc.scan(); got != want {
					t.Fatalf("tree root %d after concurrent rebuilds, scan %d", got, want)
				}
			}
		})
	}
}
