package sched

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var lcRefs = map[string]func([]refDest) int{"lc": refLC, "wlc": refWLC, "sed": refSED, "nq": refNQ}

// TestLeastConnTreeMatchesScan: at 1000 dests with few distinct weights and
// loads (so ties are everywhere), the tree's pick equals the kernel's linear
// scan after every counter change, threshold change and quiesce.
func TestLeastConnTreeMatchesScan(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const n = 1000
	loads := NewLoads(n)
	ds := make([]Dest, n)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Weight: int32(rng.IntN(4))}
		if rng.IntN(10) == 0 {
			ds[i].Upper = uint32(1 + rng.IntN(4))
		}
	}
	scheds := map[string]Scheduler{}
	for name := range lcRefs {
		s, err := New(name, ds, 0, loads, Options{})
		if err != nil {
			t.Fatal(err)
		}
		scheds[name] = s
	}
	var conns []conn
	var f Flow
	for step := range 6000 {
		switch r := rng.IntN(10); {
		case r < 5:
			id := uint32(rng.IntN(n))
			a := rng.IntN(2) == 0
			loads.Bind(id, a)
			conns = append(conns, conn{id, a})
		case r < 9 && len(conns) > 0:
			i := rng.IntN(len(conns))
			loads.Unbind(conns[i].id, conns[i].active)
			conns[i] = conns[len(conns)-1]
			conns = conns[:len(conns)-1]
		case len(conns) > 0:
			c := &conns[rng.IntN(len(conns))]
			loads.Transfer(c.id, !c.active)
			c.active = !c.active
		}
		if step%7 != 0 {
			continue
		}
		snap := snapshot(ds, loads)
		for name, s := range scheds {
			ls := s.(*LeastConn)
			if got, want := ls.t.best(), lcRefs[name](snap); got != want {
				t.Fatalf("step %d: %s tree root %d, linear scan %d", step, name, got, want)
			}
			if got, want := s.Schedule(&f), lcRefs[name](snap); got != want {
				t.Fatalf("step %d: %s picked %d, linear scan %d", step, name, got, want)
			}
		}
	}
}

// TestLeastConnTreeConcurrent: hooks from several goroutines race on the
// same tree paths; once they stop, the root must equal the linear scan.
func TestLeastConnTreeConcurrent(t *testing.T) {
	const n = 300
	loads := NewLoads(n)
	ds := make([]Dest, n)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Weight: int32(1 + i%3)}
	}
	var scheds []*LeastConn
	for _, name := range []string{"lc", "wlc", "sed", "nq"} {
		s, err := New(name, ds, 0, loads, Options{})
		if err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, s.(*LeastConn))
	}
	for round := range 5 {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				var f Flow
				for range 3000 {
					id := uint32(rng.IntN(n))
					loads.Bind(id, true)
					_ = scheds[rng.IntN(4)].Schedule(&f)
					if rng.IntN(3) != 0 {
						loads.Unbind(id, true)
					}
				}
			})
		}
		wg.Wait()
		snap := snapshot(ds, loads)
		for _, s := range scheds {
			if got, want := s.t.best(), lcRefs[s.name](snap); got != want {
				t.Fatalf("round %d: %s tree root %d after concurrent hooks, linear scan %d", round, s.name, got, want)
			}
		}
	}
}

// TestReleaseDetaches: a released tree no longer costs the hooks anything,
// and a rebuild with Prev releases the predecessor.
func TestReleaseDetaches(t *testing.T) {
	loads := NewLoads(4)
	a, _ := New("wlc", weighted(1, 1, 1, 1), 0, loads, Options{})
	b, _ := New("wlc", weighted(1, 1, 1, 1), 0, loads, Options{Prev: a})
	if got := len(*loads.d[0].watch.Load()); got != 1 {
		t.Fatalf("after rebuild with Prev: %d watchers, want 1", got)
	}
	Release(b)
	Release(b)
	if loads.d[0].watch.Load() != nil {
		t.Fatalf("after Release: watchers left")
	}
}
