package conntrack

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// randomTable fills a table with connections in every kind of lifetime a
// lookup must tell apart: live in several states and timeouts, expired
// but not swept, reopened by a SYN (released) and reinserted elsewhere,
// and never inserted. It returns the table and a pool of keys that mixes
// them all.
func randomTable(t *testing.T, rng *rand.Rand, capacity int) (*Table, *ManualClock, []Key) {
	t.Helper()
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: capacity, Clock: clk, Hooks: &countHooks{}})
	pool := make([]Key, 0, capacity*3/2)
	for i := range capacity * 3 / 2 {
		var k Key
		proto := uint8(ProtoTCP)
		if rng.IntN(4) == 0 {
			proto = ProtoUDP
		}
		if rng.IntN(2) == 0 {
			k = v4Key(proto, uint32(i), uint16(1024+rng.IntN(60000)), 80)
		} else {
			k = v6Key(proto, uint64(i)<<20|rng.Uint64N(1<<20), 443)
		}
		pool = append(pool, k)
	}
	events := []Event{EvSyn, EvAck, EvFin, EvNone}
	for i := range pool[:capacity] {
		k := &pool[i]
		c, r := tbl.Insert(k, uint32(rng.IntN(64)), uint8(rng.IntN(2)), 0, events[rng.IntN(len(events))])
		if r != Inserted {
			t.Fatalf("insert %v: %v", k, r)
		}
		switch rng.IntN(8) {
		case 0: // FIN then SYN: TIME_WAIT reopened, the entry released
			tbl.Touch(&c, k, EvFin)
			tbl.Touch(&c, k, EvFin)
			if tbl.Touch(&c, k, EvSyn) == Reopen {
				if rng.IntN(2) == 0 {
					tbl.Insert(k, uint32(rng.IntN(64)), 0, 0, EvSyn) // a new lifetime, maybe another slot
				}
				tbl.Retire(&c)
			}
		case 1: // a RST: CLOSE, 10 s
			tbl.Touch(&c, k, EvRst)
		}
		// Spread creation times so that one clock reading expires some
		// entries of every state and keeps others.
		clk.Advance(time.Duration(rng.IntN(200)) * time.Millisecond)
	}
	return tbl, clk, pool
}

// TestLookupBatchMatchesLookup compares LookupBatch with one Lookup per key
// on random tables, at clock readings that expire more and more entries,
// for batch lengths on both sides of the chunk size and with duplicates.
// Every other batch goes through LookupBatchScratch with one scratch kept
// over all the batches and tables, so each such call starts from what
// earlier ones left there.
func TestLookupBatchMatchesLookup(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var sc BatchScratch
	for round := range 3 {
		tbl, clk, pool := randomTable(t, rng, 2000)
		keys := make([]Key, 3*batchChunk+7)
		out := make([]Conn, len(keys))
		found := make([]bool, len(keys))
		hits, misses := 0, 0
		for step := range 60 {
			clk.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
			n := rng.IntN(len(keys) + 1)
			for i := range keys[:n] {
				keys[i] = pool[rng.IntN(len(pool))]
				// Stale answers from the last call must be overwritten.
				out[i], found[i] = Conn{Dest: 9999, ref: 1}, !found[i]
			}
			lookup := tbl.LookupBatch
			if step%2 == 1 {
				lookup = func(keys []Key, out []Conn, found []bool) int { return tbl.LookupBatchScratch(&sc, keys, out, found) }
			}
			if got := lookup(keys[:n], out, found); got != n {
				t.Fatalf("round %d step %d: LookupBatch returned %d, want %d", round, step, got, n)
			}
			for i := range keys[:n] {
				want, ok := tbl.Lookup(&keys[i])
				if found[i] != ok || out[i] != want {
					t.Fatalf("round %d step %d key %d %v: batch %+v %v, lookup %+v %v", round, step, i, keys[i], out[i], found[i], want, ok)
				}
				if ok {
					hits++
				} else {
					misses++
				}
			}
		}
		// The test is worth something only if both answers occurred often.
		if hits < 1000 || misses < 1000 {
			t.Fatalf("round %d: %d hits, %d misses: the random tables do not exercise both", round, hits, misses)
		}
	}
}

// TestLookupBatchTagCollision forges the worst tags a key can meet: every
// other slot of both its buckets, used or free, carries its tag, so the
// candidate LookupBatch picks is usually some other entry (or an empty
// slot) and it must fall back to the full scan.
func TestLookupBatchTagCollision(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 200, Clock: &ManualClock{}})
	s := tbl.conns
	keys := make([]Key, 150)
	for i := range keys {
		keys[i] = v4Key(ProtoUDP, uint32(i), 53, 53)
		if i%3 != 0 { // every third key stays missing
			tbl.Insert(&keys[i], uint32(i), 0, 0, EvNone)
		}
	}
	out := make([]Conn, 1)
	found := make([]bool, 1)
	for i := range keys {
		w := keys[i].words()
		b1, b2, tag := s.place(tbl.seed.hash(&w))
		want, ok := tbl.Lookup(&keys[i])
		var saved [2][bucketSlots]uint32
		for bi, b := range []uint32{b1, b2} {
			for j := range uint32(bucketSlots) {
				saved[bi][j] = s.bucket(b).tags[j].Load()
				if ok && b*bucketSlots+j == uint32(want.ref>>32)-1 {
					continue
				}
				s.bucket(b).tags[j].Store(tag)
			}
		}
		tbl.LookupBatch(keys[i:i+1], out, found)
		if found[0] != ok || out[0] != want {
			t.Fatalf("key %d %v with forged tags: batch %+v %v, lookup %+v %v", i, keys[i], out[0], found[0], want, ok)
		}
		// The other keys' lookups rely on their true tags.
		for bi, b := range []uint32{b1, b2} {
			for j := range bucketSlots {
				s.bucket(b).tags[j].Store(saved[bi][j])
			}
		}
	}
}

func TestLookupBatchShortSlices(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 100, Clock: &ManualClock{}})
	keys := []Key{v4Key(ProtoTCP, 1, 1000, 80), v4Key(ProtoTCP, 2, 1000, 80), v4Key(ProtoTCP, 3, 1000, 80)}
	for i := range keys {
		tbl.Insert(&keys[i], uint32(i), 0, 0, EvAck)
	}
	out := make([]Conn, 2)
	found := make([]bool, 3)
	if n := tbl.LookupBatch(keys, out, found); n != 2 || !found[0] || !found[1] || found[2] {
		t.Fatalf("3 keys, 2 outs: n = %d, found %v; want 2, [true true false]", n, found)
	}
	if out[1].Dest != 1 {
		t.Fatalf("key 1 -> dest %d, want 1", out[1].Dest)
	}
	if n := tbl.LookupBatch(nil, nil, nil); n != 0 {
		t.Fatalf("empty batch: n = %d", n)
	}
}

func TestLookupBatchAllocs(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 1000, Clock: &ManualClock{}})
	keys := make([]Key, 100)
	for i := range keys {
		keys[i] = v4Key(ProtoTCP, uint32(i), 1000, 80)
		if i%2 == 0 {
			tbl.Insert(&keys[i], 1, 0, 0, EvAck)
		}
	}
	out := make([]Conn, len(keys))
	found := make([]bool, len(keys))
	if a := testing.AllocsPerRun(100, func() { tbl.LookupBatch(keys, out, found) }); a != 0 {
		t.Fatalf("%v allocations per batch of %d", a, len(keys))
	}
	var sc BatchScratch
	if a := testing.AllocsPerRun(100, func() { tbl.LookupBatchScratch(&sc, keys, out, found) }); a != 0 {
		t.Fatalf("%v allocations per batch of %d with a scratch", a, len(keys))
	}
}

// TestLookupBatchConcurrent runs batched readers against writers that
// insert, reopen and expire the same keys. A key's dest is a function of
// the key, so any answer assembled from two lifetimes of a slot, or from
// another key's entry, shows as a wrong dest.
func TestLookupBatchConcurrent(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 512, Clock: clk})
	const nkeys = 600 // more than fit: inserts evict and refuse too
	keys := make([]Key, nkeys)
	for i := range keys {
		keys[i] = v6Key(ProtoTCP, uint64(i)*7919, 80)
	}
	destOf := func(i int) uint32 { return uint32(i%61) + 1 }
	rounds := 50000
	if raceEnabled {
		rounds = 2000
	}
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for r := 0; r < rounds; r++ {
				i := rng.IntN(nkeys)
				c, res := tbl.Insert(&keys[i], destOf(i), 0, 0, EvSyn)
				if res == Full {
					continue
				}
				switch rng.IntN(3) {
				case 0:
					tbl.Touch(&c, &keys[i], EvFin)
					if tbl.Touch(&c, &keys[i], EvSyn) == Reopen { // SYN_RECV+FIN: TW; then SYN reopens
						tbl.Retire(&c)
					}
				case 1:
					clk.Advance(time.Duration(rng.IntN(100)) * time.Millisecond)
				}
				if r%64 == 0 {
					tbl.Sweep(256)
				}
			}
		})
	}
	var bad atomic.Int64
	var seen atomic.Int64
	for range 2 {
		readers.Go(func() {
			batch := make([]Key, 80)
			idx := make([]int, len(batch))
			out := make([]Conn, len(batch))
			found := make([]bool, len(batch))
			rng := rand.New(rand.NewPCG(7, 7))
			for !stop.Load() {
				for j := range batch {
					idx[j] = rng.IntN(nkeys)
					batch[j] = keys[idx[j]]
				}
				tbl.LookupBatch(batch, out, found)
				for j := range batch {
					if !found[j] {
						continue
					}
					seen.Add(1)
					if out[j].Dest != destOf(idx[j]) {
						bad.Add(1)
					}
				}
			}
		})
	}
	// Readers run until the writers are done.
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	if seen.Load() < 1000 {
		t.Fatalf("only %d batched hits: the readers barely overlapped the writers", seen.Load())
	}
	if bad.Load() != 0 {
		t.Fatalf("%d of %d batched hits returned another key's dest", bad.Load(), seen.Load())
	}
}

// BenchmarkLookupBatch is BenchmarkLookup's hit and miss in batches of 64
// keys, the dataplane's batch size, on the same tables and key sequences.
func BenchmarkLookupBatch(b *testing.B) {
	const batch = 64
	for _, size := range benchSizes {
		b.Run("entries="+size.name, func(b *testing.B) {
			tbl := benchTable(b, size.n, EvAck)
			for _, op := range []string{"hit", "miss"} {
				b.Run("op="+op, func(b *testing.B) {
					var keys [batch]Key
					var out [batch]Conn
					var found [batch]bool
					x := uint64(1)
					want := op == "hit"
					b.ReportAllocs()
					for b.Loop() {
						for i := range keys {
							benchKey(&keys[i], pick(&x, size.n))
							if !want {
								keys[i].VPort = 81
							}
						}
						tbl.LookupBatch(keys[:], out[:], found[:])
						for i := range found {
							if found[i] != want {
								b.Fatalf("key %v: found %v", keys[i], found[i])
							}
						}
					}
					// ns/key: the batch's time over its keys, comparable
					// with BenchmarkLookup's ns/op.
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/key")
				})
			}
		})
	}
}

// TestPrefetchInsertChangesNothing prefetches keys present and absent, in
// a table with room and in a full one, and requires the same stats and
// answers afterwards and no allocation.
func TestPrefetchInsertChangesNothing(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 64, Clock: &ManualClock{}})
	keys := make([]Key, 128)
	for i := range keys {
		keys[i] = v4Key(ProtoTCP, uint32(i), 1000, 80)
	}
	for full := range 2 {
		for i := range keys[:32+32*full] {
			tbl.Insert(&keys[i], 1, 0, 0, EvSyn)
		}
		st := tbl.Stats()
		if a := testing.AllocsPerRun(10, func() {
			for i := range keys {
				tbl.PrefetchInsert(&keys[i])
			}
		}); a != 0 {
			t.Fatalf("%v allocations per %d prefetches", a, len(keys))
		}
		if got := tbl.Stats(); got != st {
			t.Fatalf("full=%d: stats %v after prefetching, %v before", full, got, st)
		}
		for i := range keys {
			if _, ok := tbl.Lookup(&keys[i]); ok != (i < 32+32*full) {
				t.Fatalf("full=%d: key %d present=%v after prefetching", full, i, ok)
			}
		}
	}
}

// TestTagMatchesAgainstOneByOne fills a bucket's tags with random values,
// some equal to the probed tag, and requires tagMatches's word-at-a-time
// mask to be the one the slot-by-slot comparison gives, for tags that
// differ from the probe in one bit, in the top bit of a lane, or not at
// all, and for unwritten (zero) tags.
func TestTagMatchesAgainstOneByOne(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 64, Clock: &ManualClock{}})
	s := tbl.conns
	x := uint64(3)
	rnd := func() uint32 {
		x = x*6364136223846793005 + 1442695040888963407
		return uint32(x >> 32)
	}
	matched := 0
	for range 20000 {
		tag := rnd() | 1
		bk := s.bucket(0)
		for j := range bucketSlots {
			var v uint32
			switch rnd() % 6 {
			case 0:
				v = tag
			case 1:
				v = tag ^ 1<<(rnd()%32)
			case 2:
				v = tag ^ 0x8000_0000
			case 3:
				v = 0
			default:
				v = rnd()
			}
			bk.tags[j].Store(v)
		}
		var want uint32
		for j := range bucketSlots {
			if bk.tags[j].Load() == tag {
				want |= 1 << j
			}
		}
		if got := s.tagMatches(0, tag); got != want {
			t.Fatalf("tag %#x: mask %014b, want %014b", tag, got, want)
		}
		if want != 0 {
			matched++
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d probes matched a slot", matched)
	}
}

// TestCandidatesMatchCandidate fills a table's bucket tags at random, some
// equal to the probed tags, and requires store.candidates (the assembly
// version on amd64) to pick, for every placement, the slot
// store.candidate picks: first match in b1, else in b2, else none, with
// the used and latch words after the tags never taken for a tag.
func TestCandidatesMatchCandidate(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 1000, Clock: &ManualClock{}})
	s := tbl.conns
	x := uint64(5)
	rnd := func() uint32 {
		x = x*6364136223846793005 + 1442695040888963407
		return uint32(x >> 32)
	}
	tags := [4]uint32{0x1001, 0x2001, 0xffff_ffff, 0x8000_0001}
	for b := range s.nb {
		for j := range bucketSlots {
			v := rnd()
			if rnd()%3 == 0 {
				v = tags[rnd()%4]
			}
			s.bucket(b).tags[j].Store(v)
		}
		// The words after the tags hold a probed tag's value: a lane
		// past the 14th must not count.
		s.bucket(b).used.Store(tags[rnd()%4])
		s.bucket(b).latch.Store(tags[rnd()%4])
	}
	const n = 1000
	pl := make([]placement, n)
	for i := range pl {
		b1 := rnd() % s.nb
		b2 := rnd() % s.nb
		pl[i] = placement{b1, b2, tags[rnd()%4]}
	}
	got := make([]uint32, n)
	s.candidates(pl, got)
	kinds := map[string]int{}
	for i := range pl {
		want := s.candidate(&pl[i])
		if got[i] != want {
			t.Fatalf("placement %+v: candidate %d, want %d", pl[i], got[i], want)
		}
		switch {
		case want == noCandidate:
			kinds["none"]++
		case want/bucketSlots == pl[i].b1:
			kinds["b1"]++
		default:
			kinds["b2"]++
		}
	}
	if kinds["none"] == 0 || kinds["b1"] == 0 || kinds["b2"] == 0 {
		t.Fatalf("the placements did not cover every case: %v", kinds)
	}
}

// TestInPlaceCopiesMatchValues checks the in-place forms the batched
// lookup uses against the value forms the rest of the table uses: every
// bit of a key's words and of a view's connection.
func TestInPlaceCopiesMatchValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
	for range 10000 {
		var k Key
		for i := range k.CAddr {
			k.CAddr[i], k.VAddr[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		k.CPort, k.VPort, k.Proto = uint16(rng.Uint32()), uint16(rng.Uint32()), uint8(rng.Uint32())
		w := keyWords{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
		if k.wordsTo(&w); w != k.words() {
			t.Fatalf("%v: wordsTo %x, words %x", k, w, k.words())
		}
		v := view{slot: rng.Uint32() >> 1, meta: rng.Uint64(), ports: rng.Uint64(), bind: rng.Uint64()}
		c := Conn{Dest: rng.Uint32(), ref: rng.Uint64(), unfiled: true}
		if v.connTo(&c); c != v.conn() {
			t.Fatalf("%+v: connTo %+v, conn %+v", v, c, v.conn())
		}
	}
}
