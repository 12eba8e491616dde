package conntrack

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentHammer runs worker goroutines over one small table of
// shared flows (so inserts race, entries are evicted and refused, and the
// same flow is touched from several goroutines) while others advance the
// clock, sweep, list and churn templates. Run it with -race. At the end
// the hooks' counts must equal a recount of the table, the Stats must
// balance, and expiring everything must bring every count to zero.
func TestConcurrentHammer(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 200, Templates: 16, Clock: clk, Hooks: h})
	const workers, ops, flows = 4, 12000, 400
	var keys []Key
	for i := range uint32(flows) {
		keys = append(keys, v4Key(ProtoTCP, i%50, uint16(i), 80))
	}
	var tmplKeys []Key
	for i := range uint32(50) {
		tmplKeys = append(tmplKeys, v4Key(ProtoTCP, i, 0, 80))
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	var touched, full, exists atomic.Int64
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
			for op := range ops {
				if op%64 == 0 {
					clk.Advance(500 * time.Millisecond)
				}
				i := r.IntN(flows)
				k := &keys[i]
				ev := Event(r.IntN(5))
				if c, ok := tbl.Lookup(k); ok {
					switch tbl.Touch(&c, k, ev) {
					case Hit:
						touched.Add(1)
					case Reopen:
						tbl.Retire(&c)
					}
					continue
				}
				var ref TemplateRef
				dest := uint32(r.IntN(8))
				if i%3 == 0 {
					tk := &tmplKeys[i%50]
					if d, tr, ok := tbl.LookupTemplate(tk); ok {
						dest, ref = d, tr
						if d == 7 {
							tbl.DeleteTemplate(tr) // a quiesced server
							ref = 0
						}
					} else if tr, res := tbl.InsertTemplate(tk, dest, 30*time.Second); res != Full {
						ref = tr
						if d, ok := tbl.Template(tr); ok {
							dest = d
						}
					}
				}
				switch _, res := tbl.Insert(k, dest, 0, ref, ev); res {
				case Full:
					full.Add(1)
				case Exists:
					exists.Add(1)
				}
			}
		})
	}
	var side sync.WaitGroup
	side.Go(func() {
		for !stop.Load() {
			clk.Advance(200 * time.Millisecond)
			tbl.Sweep(37)
			runtime.Gosched()
		}
	})
	side.Go(func() {
		for !stop.Load() {
			tbl.ExpireDue()
			runtime.Gosched()
		}
	})
	side.Go(func() {
		for !stop.Load() {
			n := 0
			tbl.Range(func(k Key, c Conn, _ time.Duration, tmpl bool) bool {
				if !tmpl && c.State >= numStates {
					t.Errorf("Range saw state %d", c.State)
				}
				n++
				return true
			})
			if st := tbl.Stats(); st.Entries > st.Capacity {
				t.Errorf("entries %d over capacity %d", st.Entries, st.Capacity)
			}
		}
	})
	wg.Wait()
	stop.Store(true)
	side.Wait()

	st := tbl.Stats()
	t.Logf("%v touched=%d full=%d exists=%d", st, touched.Load(), full.Load(), exists.Load())
	if st.Inserted != st.Expired+st.Evicted+st.Reopened+st.Entries {
		t.Fatalf("stats do not balance: %v", st)
	}
	if st.Refused != uint64(full.Load()) {
		t.Fatalf("refused %d, Full returned %d times", st.Refused, full.Load())
	}
	if st.Evicted == 0 || st.Expired == 0 || st.Reopened == 0 || touched.Load() == 0 {
		t.Fatalf("hammer missed a path: %v", st)
	}
	checkCounts(t, tbl, h)
	// The expiry index holds lower bounds after all the races: every live
	// entry's due second is no later than its expiry, and its group's
	// bound no later than that.
	s := tbl.conns
	for slot := range s.slots() {
		m := s.entry(slot).meta.Load()
		if status(m) != statusLive {
			continue
		}
		if d, g := s.due[slot].Load(), s.gdue[slot/dueGroupSlots].Load(); d > dueSec(payload(m)) || g > d {
			t.Fatalf("slot %d expires at %d ms (second %d) but the index says %d, group %d", slot, payload(m), dueSec(payload(m)), d, g)
		}
	}
	// Expire everything: ExpireDue alone must release every connection,
	// and all counts must come back to exactly zero.
	clk.Advance(time.Hour)
	tbl.ExpireDue()
	if st := tbl.Stats(); st.Entries != 0 {
		t.Fatalf("ExpireDue left %d expired connections: %v", st.Entries, st)
	}
	clk.Advance(time.Hour)
	tbl.Sweep(tbl.Slots())
	st = tbl.Stats()
	if st.Entries != 0 || st.Templates != 0 {
		t.Fatalf("after expiring everything: %v", st)
	}
	for d := range 64 {
		if a, i := h.active[d].Load(), h.inactive[d].Load(); a != 0 || i != 0 {
			t.Fatalf("dest %d: %d active %d inactive left", d, a, i)
		}
	}
}

// TestSameFlowTwoQueues is the RSS change: two queues see the same new
// flows at once. Exactly one insert wins per flow, the loser adopts the
// winner's server, and every packet's transition is applied once.
func TestSameFlowTwoQueues(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 10000, Clock: clk, Hooks: h})
	const flows = 2000
	var dests [2][flows]uint32
	var inserted [2]int
	var wg sync.WaitGroup
	for q := range 2 {
		wg.Go(func() {
			for i := range uint32(flows) {
				k := v4Key(ProtoTCP, i, 5000, 80)
				c, ok := tbl.Lookup(&k)
				if !ok {
					var r InsertResult
					c, r = tbl.Insert(&k, uint32(q), 0, 0, EvSyn)
					if r == Inserted {
						inserted[q]++
					}
				}
				// Each queue applies one ACK: SYN_RECV -> ESTABLISHED
				// once, the second is a no-op refresh.
				tbl.Touch(&c, &k, EvAck)
				dests[q][i] = c.Dest
			}
		})
	}
	wg.Wait()
	if inserted[0]+inserted[1] != flows {
		t.Fatalf("inserted %d+%d, want %d", inserted[0], inserted[1], flows)
	}
	for i := range flows {
		if dests[0][i] != dests[1][i] {
			t.Fatalf("flow %d went to %d on one queue and %d on the other", i, dests[0][i], dests[1][i])
		}
	}
	if a := h.active[0].Load() + h.active[1].Load(); a != flows || h.inactive[0].Load()+h.inactive[1].Load() != 0 {
		t.Fatalf("active %d, want %d", a, flows)
	}
	checkCounts(t, tbl, h)
}

// TestConcurrentEvictionKeepsRoom has goroutines insert new SYN_RECV
// connections into a table at capacity, all evictable: every insert must
// evict one and take its place. An insert that evicted a connection must
// not then lose that room to a racing insert and be refused.
func TestConcurrentEvictionKeepsRoom(t *testing.T) {
	const capacity, workers, per = 64, 4, 20000
	tbl := newTestTable(t, Config{Capacity: capacity, Clock: &ManualClock{}})
	for i := range uint32(capacity) {
		k := v4Key(ProtoTCP, i, 1000, 80)
		if _, r := tbl.Insert(&k, 1, 0, 0, EvSyn); r != Inserted {
			t.Fatalf("filling: insert %d = %v", i, r)
		}
	}
	var wg sync.WaitGroup
	for w := range uint32(workers) {
		wg.Go(func() {
			for i := range uint32(per) {
				k := v4Key(ProtoTCP, i%60000, uint16(2000+w), 80)
				if _, r := tbl.Insert(&k, 1, 0, 0, EvSyn); r != Inserted {
					t.Errorf("worker %d: insert %d = %v", w, i, r)
					return
				}
				if i%256 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()
	st := tbl.Stats()
	if st.Refused != 0 || st.Entries != capacity || st.Inserted != st.Evicted+st.Entries {
		t.Fatalf("stats %v: want no refusal, %d entries, every insert past capacity evicting one", st, capacity)
	}
}

// TestEvictionRoomNotStolen races another inserter into the moment after
// an insert into a full table evicted: afterEvict tries to take a unit of
// capacity, as a concurrent insert elsewhere in the table would. The room
// the eviction made must stay with the insert that made it; before it did,
// the unit went to the racer and the insert, after four evictions, was
// refused.
func TestEvictionRoomNotStolen(t *testing.T) {
	const capacity = 32
	tbl := newTestTable(t, Config{Capacity: capacity, Clock: &ManualClock{}})
	for i := range uint32(capacity) {
		k := v4Key(ProtoTCP, i, 1000, 80)
		if _, r := tbl.Insert(&k, 1, 0, 0, EvSyn); r != Inserted {
			t.Fatalf("filling: insert %d = %v", i, r)
		}
	}
	stolen := 0
	afterEvict = func() {
		if tbl.conns.reserve() {
			stolen++
		}
	}
	defer func() { afterEvict = nil }()
	k := v4Key(ProtoTCP, 1000, 2000, 80)
	if _, r := tbl.Insert(&k, 1, 0, 0, EvSyn); r != Inserted {
		t.Fatalf("insert into a full table with a racer = %v, want inserted (units taken by the racer: %d)", r, stolen)
	}
	if st := tbl.Stats(); stolen != 0 || st.Entries != capacity || st.Evicted != 1 || st.Refused != 0 {
		t.Fatalf("racer took %d units; stats %v, want %d entries and one eviction", stolen, st, capacity)
	}
}
