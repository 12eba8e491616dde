package conntrack

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

var benchSizes = []struct {
	name string
	n    uint32
}{{"1K", 1_000}, {"1M", 1_000_000}, {"10M", 10_000_000}}

// benchKey writes the i-th benchmark flow into k in place, so generating a
// key costs the same few stores at every table size.
func benchKey(k *Key, i uint32) {
	k.CAddr = [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 18 + byte(i>>23&1), 14: byte(i >> 15), 15: byte(i >> 7)}
	k.VAddr = [16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 19, 14: 255, 15: 1}
	k.CPort = 1024 + uint16(i&127)
	k.VPort = 80
	k.Proto = ProtoTCP
}

// pick is a multiplicative-congruential index into [0, n): random enough
// to defeat the caches, cheap enough not to matter.
func pick(x *uint64, n uint32) uint32 {
	*x = *x*6364136223846793005 + 1442695040888963407
	return uint32((*x >> 32) * uint64(n) >> 32)
}

var benchCache = map[string]*Table{}

// dropBenchTables closes the cached tables, for a benchmark that needs no
// other table alive.
func dropBenchTables() {
	for name, t := range benchCache {
		t.Close()
		delete(benchCache, name)
	}
}

// benchTable returns a table of capacity n filled with n connections that
// first saw ev (EvAck: ESTABLISHED; EvSyn: evictable SYN_RECV), built once
// per process: filling 10M entries takes seconds.
func benchTable(b *testing.B, n uint32, ev Event) *Table {
	name := strconv.Itoa(int(ev)) + "/" + strconv.Itoa(int(n))
	if t, ok := benchCache[name]; ok {
		return t
	}
	// Not newTestTable: the table outlives the sub-benchmark that built it.
	// A fixed hash key, so every run places the same keys: filled to
	// capacity with ESTABLISHED entries, which are never evicted, a key
	// whose two buckets are both full is refused (rarely: at 80% load
	// about once in a few 10M fills), and with a random key that made the
	// fill, and the benchmarks after it, fail now and then.
	var hk [32]byte
	r := rand.New(rand.NewPCG(0x5eed, 1))
	for i := range hk {
		hk[i] = byte(r.Uint32())
	}
	tbl, err := New(Config{Capacity: int(n), Clock: &ManualClock{}, HashKey: &hk})
	if err != nil {
		b.Fatal(err)
	}
	var k Key
	for i := range n {
		benchKey(&k, i)
		if _, r := tbl.Insert(&k, i%1000, 0, 0, ev); r != Inserted {
			b.Fatalf("fill %d/%d: %v", i, n, r)
		}
	}
	benchCache[name] = tbl
	return tbl
}

func BenchmarkLookup(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("entries="+size.name, func(b *testing.B) {
			tbl := benchTable(b, size.n, EvAck)
			b.Run("op=hit", func(b *testing.B) {
				var k Key
				x := uint64(1)
				b.ReportAllocs()
				for b.Loop() {
					benchKey(&k, pick(&x, size.n))
					if _, ok := tbl.Lookup(&k); !ok {
						b.Fatal("miss")
					}
				}
				// bytes/entry: the table's whole allocation over its capacity.
				b.ReportMetric(float64(tbl.Bytes())/float64(size.n), "bytes/entry")
			})
			b.Run("op=miss", func(b *testing.B) {
				var k Key
				x := uint64(1)
				b.ReportAllocs()
				for b.Loop() {
					benchKey(&k, pick(&x, size.n))
					k.VPort = 81
					if _, ok := tbl.Lookup(&k); ok {
						b.Fatal("hit")
					}
				}
			})
			b.Run("op=packet", func(b *testing.B) {
				// The per-packet cost of a known flow: Lookup then Touch.
				var k Key
				x := uint64(1)
				b.ReportAllocs()
				for b.Loop() {
					benchKey(&k, pick(&x, size.n))
					c, _ := tbl.Lookup(&k)
					if tbl.Touch(&c, &k, EvAck) != Hit {
						b.Fatal("touch missed")
					}
				}
			})
			b.Run("op=packet-clock=moving", func(b *testing.B) {
				// As op=packet, with the table's clock moving 1 ms every
				// 8192 packets (about 8 Mpps): at 1M flows and more a
				// flow's visits are milliseconds apart, so a refresh
				// that wrote on every millisecond would write each one.
				clk := tbl.clock.(*ManualClock)
				var k Key
				x := uint64(1)
				n := 0
				b.ReportAllocs()
				for b.Loop() {
					if n++; n&8191 == 0 {
						clk.Advance(time.Millisecond)
					}
					benchKey(&k, pick(&x, size.n))
					c, _ := tbl.Lookup(&k)
					if tbl.Touch(&c, &k, EvAck) != Hit {
						b.Fatal("touch missed")
					}
				}
			})
		})
	}
}

// BenchmarkInsert measures a new connection against a full table of
// SYN_RECV entries, the steady state of a busy director or a SYN flood:
// every insert evicts the oldest candidate in the key's buckets.
func BenchmarkInsert(b *testing.B) {
	for _, size := range benchSizes {
		b.Run("entries="+size.name, func(b *testing.B) {
			tbl := benchTable(b, size.n, EvSyn)
			n := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				n++
				k := v6Key(ProtoTCP, n<<32|uint64(size.n), 80)
				if _, r := tbl.Insert(&k, 1, 0, 0, EvSyn); r != Inserted {
					b.Fatalf("insert: %v", r)
				}
			}
		})
	}
}

// BenchmarkParallel compares the two designs for queue workers: one
// shared table (chosen) against a table per queue, on the per-packet path
// at 1M flows, plus the worst case of the shared design, every queue
// hammering one flow.
func BenchmarkParallel(b *testing.B) {
	const n = 1_000_000
	// Both tables exist before any timing starts.
	tables := []*Table{benchTable(b, n, EvAck), benchTable(b, n+1, EvAck)}
	b.Run("design=shared", func(b *testing.B) {
		tbl := tables[0]
		var seeds atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			x := seeds.Add(1)
			var k Key
			for pb.Next() {
				benchKey(&k, pick(&x, n))
				c, _ := tbl.Lookup(&k)
				tbl.Touch(&c, &k, EvAck)
			}
		})
	})
	b.Run("design=perqueue", func(b *testing.B) {
		var seeds atomic.Uint64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			x := seeds.Add(1)
			tbl := tables[x%2]
			var k Key
			for pb.Next() {
				benchKey(&k, pick(&x, n))
				c, _ := tbl.Lookup(&k)
				tbl.Touch(&c, &k, EvAck)
			}
		})
	})
	b.Run("design=shared/flows=1", func(b *testing.B) {
		clk := &ManualClock{}
		// A 1 s ESTABLISHED timeout, whose slack is 15 ms: the clock
		// moves 16 ms a packet below, so that every Touch writes.
		to := DefaultTimeouts()
		to.Established = time.Second
		tbl := newTestTable(b, Config{Capacity: 1000, Clock: clk, Timeouts: to})
		var k0 Key
		benchKey(&k0, 7)
		tbl.Insert(&k0, 1, 0, 0, EvAck)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var k Key
			benchKey(&k, 7)
			for pb.Next() {
				c, _ := tbl.Lookup(&k)
				// Move the clock past the slack so every Touch really
				// writes the entry.
				clk.Advance(16 * time.Millisecond)
				tbl.Touch(&c, &k, EvAck)
			}
		})
	})
}

// BenchmarkHousekeeping is one housekeeping tick of the daemon on a full
// table of ESTABLISHED connections of which none is due: op=sweep is the
// slot sweep it ran before (a twentieth of the slots a tick, so every
// slot once a second), op=expiredue the expiry index's scan, which finds
// a connection as soon as it is due instead. op=expire releases 1000 due
// connections a tick through the index (fresh ones are inserted between
// ticks), the cost per released connection.
func BenchmarkHousekeeping(b *testing.B) {
	for _, size := range benchSizes[1:] {
		b.Run("entries="+size.name, func(b *testing.B) {
			tbl := benchTable(b, size.n, EvAck)
			b.Run("op=sweep", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tbl.Sweep(max(tbl.Slots()/20, 1024))
				}
			})
			b.Run("op=expiredue", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					tbl.ExpireDue()
				}
			})
		})
	}
	b.Run("op=expire", func(b *testing.B) {
		clk := &ManualClock{}
		tbl, err := New(Config{Capacity: 1_000_000, Clock: clk})
		if err != nil {
			b.Fatal(err)
		}
		defer tbl.Close()
		var k Key
		for i := range uint32(900_000) {
			benchKey(&k, i)
			tbl.Insert(&k, i%1000, 0, 0, EvAck)
		}
		n := uint64(0)
		released := 0
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for range 1000 {
				n++
				k := v6Key(ProtoUDP, n, 53)
				tbl.Insert(&k, 1, 0, 0, EvNone) // UDP: due in 300 s
			}
			clk.Advance(300 * time.Second)
			b.StartTimer()
			released += tbl.ExpireDue()
			b.StopTimer()
			clk.Advance(-300 * time.Second)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(released, 1)), "ns/expired")
	})
}
