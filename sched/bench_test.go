package sched

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// fixture is a service of n dests with weights 1..5, random standing load
// (for the least-connection family), and a pool of flows: 4096 clients
// spread over 64 destination addresses, so lblc/lblcr hit their cache.
type fixture struct {
	s     Scheduler
	loads *Loads
	flows []Flow
}

func newFixture(tb testing.TB, name string, n int, flags Flags) *fixture {
	tb.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	loads := NewLoads(n)
	ds := make([]Dest, n)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Port: 80, Weight: int32(1 + i%5),
			Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).As16()}
	}
	s, err := New(name, ds, flags, loads, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		for range rng.IntN(50) {
			loads.Bind(uint32(i), rng.IntN(4) != 0)
		}
	}
	fx := &fixture{s: s, loads: loads, flows: make([]Flow, 4096)}
	for i := range fx.flows {
		f := &fx.flows[i]
		f.Proto = 6
		f.CPort = uint16(1024 + rng.IntN(60000))
		f.CAddr = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}).As16()
		f.VAddr = netip.AddrFrom4([4]byte{198, 19, 255, byte(i % 64)}).As16()
		f.VPort = 80
	}
	// Warm caches: the steady state is a hit.
	for i := range fx.flows {
		fx.s.Schedule(&fx.flows[i])
	}
	return fx
}

// TestScheduleAllocs: a pick allocates nothing, for every scheduler, in the
// steady state (for lblc/lblcr: a cache hit).
func TestScheduleAllocs(t *testing.T) {
	for _, name := range Names() {
		fx := newFixture(t, name, 100, 0)
		i := 0
		allocs := testing.AllocsPerRun(2000, func() {
			fx.s.Schedule(&fx.flows[i&4095])
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocs per pick", name, allocs)
		}
	}
	fx := newFixture(t, "wlc", 100, 0)
	if a := testing.AllocsPerRun(1000, func() { fx.loads.Bind(3, true); fx.loads.Unbind(3, true) }); a != 0 {
		t.Errorf("Bind+Unbind with a watching tree: %.1f allocs", a)
	}
}

func BenchmarkSchedule(b *testing.B) {
	for _, name := range Names() {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("sched=%s/dests=%d", name, n), func(b *testing.B) {
				fx := newFixture(b, name, n, 0)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					fx.s.Schedule(&fx.flows[i&4095])
					i++
				}
			})
		}
	}
}

// BenchmarkHooks is the cost the least-connection tree moves onto the
// connection table: one Bind plus one Unbind, refreshing the dest's path.
func BenchmarkHooks(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sched=wlc/dests=%d", n), func(b *testing.B) {
			fx := newFixture(b, "wlc", n, 0)
			b.ReportAllocs()
			id := uint32(0)
			for b.Loop() {
				fx.loads.Bind(id, true)
				fx.loads.Unbind(id, true)
				id = (id + 1) % uint32(n)
			}
		})
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("size=65537/dests=%d", n), func(b *testing.B) {
			ds := maglevDests(n, func(i int) int32 { return int32(1 + i%5) })
			loads := NewLoads(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New("mh", ds, 0, loads, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLBLCExpiry: with an injected clock, an entry unused for the
// expiration is collected by the full check, and a flow that comes back
// afterwards is scheduled afresh.
func TestLBLCExpiry(t *testing.T) {
	var now time.Duration
	loads := NewLoads(2)
	s, err := New("lblc", weighted(1, 1), 0, loads, Options{Now: func() time.Duration { return now }, LBLCExpiration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := s.(*LBLC).Cache()
	f := Flow{VAddr: netip.AddrFrom4([4]byte{198, 19, 0, 1}).As16()}
	if got := s.Schedule(&f); got != 0 || c.Len() != 1 {
		t.Fatalf("first pick %d, cache %d entries", got, c.Len())
	}
	loads.Bind(0, true) // dest 1 is now the wlc choice, but the cache sticks
	now = 20 * time.Minute
	if got := s.Schedule(&f); got != 0 {
		t.Fatalf("cached pick %d, want 0", got)
	}
	// Full checks run every 30 minutes; the entry was last used at 20 min.
	now = 20*time.Minute + time.Hour + 31*time.Minute
	g := Flow{VAddr: netip.AddrFrom4([4]byte{198, 19, 0, 2}).As16()}
	s.Schedule(&g) // runs the replayed timer ticks
	if c.Len() != 1 {
		t.Fatalf("after expiry: %d entries, want only the new one", c.Len())
	}
	if got := s.Schedule(&f); got != 1 {
		t.Fatalf("after expiry pick %d, want 1 (wlc)", got)
	}
}

// BenchmarkScan is the kernel's linear least-connection loop (the
// reference the tree replaces), for a same-run ratio against
// BenchmarkSchedule/sched=wlc.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("sched=wlc/dests=%d", n), func(b *testing.B) {
			fx := newFixture(b, "wlc", n, 0)
			lc := fx.s.(*LeastConn)
			b.ReportAllocs()
			for b.Loop() {
				lc.scan()
			}
		})
	}
}
