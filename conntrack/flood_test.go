package conntrack

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSYNFlood sends one million SYNs from random sources at a table of
// 100k entries holding 30k established connections, from two queues,
// while a third goroutine keeps forwarding the established ones. The
// table must stay within its bound (entries and heap), every established
// connection must keep forwarding to its server, and every refused SYN
// must be counted.
func TestSYNFlood(t *testing.T) {
	capacity, established, syns := 100_000, 30_000, 1_000_000
	if raceEnabled {
		capacity, established, syns = 10_000, 3_000, 100_000
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: capacity, Clock: clk, Hooks: h})
	estKey := func(i uint32) Key { return v4Key(ProtoTCP, i, uint16(1024+i%50000), 443) }
	for i := range uint32(established) {
		k := estKey(i)
		c, r := tbl.Insert(&k, i%32, 0, 0, EvSyn)
		if r != Inserted {
			t.Fatalf("established %d: %v", i, r)
		}
		tbl.Touch(&c, &k, EvAck)
	}

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapAlloc

	var inserted, full, exists atomic.Int64
	var lost atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for q := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(q)))
			var k Key
			for i := range syns / 2 {
				k = v6Key(ProtoTCP, r.Uint64(), 443)
				if i%1000 == 0 {
					clk.Advance(time.Millisecond) // ages for oldest-first
					if e := tbl.Stats().Entries; e > uint64(capacity) {
						t.Errorf("entries %d over capacity %d", e, capacity)
					}
				}
				if _, ok := tbl.Lookup(&k); ok {
					continue
				}
				switch _, res := tbl.Insert(&k, uint32(32+q), 0, 0, EvSyn); res {
				case Inserted:
					inserted.Add(1)
				case Full:
					full.Add(1)
				case Exists:
					exists.Add(1)
				}
			}
		})
	}
	var fwd sync.WaitGroup
	fwd.Go(func() {
		for round := 0; !stop.Load(); round++ {
			i := uint32(round % established)
			k := estKey(i)
			c, ok := tbl.Lookup(&k)
			if !ok || c.Dest != i%32 || tbl.Touch(&c, &k, EvAck) != Hit {
				lost.Add(1)
			}
		}
	})
	wg.Wait()
	stop.Store(true)
	fwd.Wait()

	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(heapBefore); grew > 1<<20 {
		t.Errorf("heap grew by %d bytes during the flood", grew)
	}
	st := tbl.Stats()
	t.Logf("%v; flood inserted=%d full=%d exists=%d", st, inserted.Load(), full.Load(), exists.Load())
	if lost.Load() != 0 {
		t.Errorf("%d packets of established connections found no entry during the flood", lost.Load())
	}
	for i := range uint32(established) {
		k := estKey(i)
		if c, ok := tbl.Lookup(&k); !ok || c.Dest != i%32 || c.State != Established {
			t.Fatalf("established connection %d lost after the flood: %+v %v", i, c, ok)
		}
	}
	if st.Entries > uint64(capacity) {
		t.Errorf("entries %d over capacity", st.Entries)
	}
	if st.Refused != uint64(full.Load()) {
		t.Errorf("refused counter %d, Full returned %d", st.Refused, full.Load())
	}
	if got := inserted.Load() + full.Load() + exists.Load(); got > int64(syns) || st.Inserted != uint64(int64(established)+inserted.Load()) {
		t.Errorf("SYNs unaccounted: inserted %d + full %d + exists %d of %d; stats %v", inserted.Load(), full.Load(), exists.Load(), syns, st)
	}
	if st.Inserted != st.Entries+st.Evicted+st.Expired+st.Reopened {
		t.Errorf("stats do not balance: %v", st)
	}
	if st.Evicted == 0 {
		t.Errorf("flood evicted nothing: %v", st)
	}
	var active, inactive int64
	for d := range 64 {
		active += h.active[d].Load()
		inactive += h.inactive[d].Load()
	}
	if active != int64(st.Entries) || inactive != 0 {
		t.Errorf("hooks count %d active %d inactive, table holds %d SYN_RECV/ESTABLISHED", active, inactive, st.Entries)
	}
}
