package conntrack

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// gcGarbage is what each step of BenchmarkGCPause allocates and drops.
var gcGarbage []byte

var noLookups = os.Getenv("NOLOOKUPS") != ""

// BenchmarkGCPause measures the collector's stop-the-world pauses while a
// table of 0 (the control: no table at all), 1K, 1M or 10M entries is
// alive and being looked up. One benchmark iteration is one GC cycle, so
// -benchtime 500x gives every size the same number of pauses and the
// maxima compare fairly.
//
// mode=background is the daemon's case: cycles start on their own as the
// loop allocates (GOGC=1, so a cycle comes every 1% of heap growth) and
// sweep concurrently. mode=forced calls runtime.GC, which also sweeps the
// whole heap with the world stopped (runtime/mgc.go, gcSweep in
// gcForceBlockMode); the daemon never does that, and it is kept only to
// show what that synchronous sweep adds.
//
// Each size builds its own table after dropping the other benchmarks'
// cached ones, so only that table is alive. Pauses come from the
// runtime/metrics histogram /sched/pauses/total/gc:seconds (each
// stop-the-world phase is one sample, two per cycle); quantiles are
// reported as the upper edge of their histogram bucket.
func BenchmarkGCPause(b *testing.B) {
	sizes := append([]struct {
		name string
		n    uint32
	}{{"0", 0}}, benchSizes...)
	for _, mode := range []string{"background", "forced"} {
		for _, size := range sizes {
			b.Run("mode="+mode+"/entries="+size.name, func(b *testing.B) {
				dropBenchTables()
				var tbl *Table
				if size.n > 0 {
					tbl = newTestTable(b, Config{Capacity: int(size.n), Clock: &ManualClock{}})
					var k Key
					for i := range size.n {
						benchKey(&k, i)
						tbl.Insert(&k, i%1000, 0, 0, EvAck)
					}
				}
				runtime.GC()
				old := debug.SetGCPercent(1)
				defer debug.SetGCPercent(old)
				before, beforeStop := readGCPauses(), readHist("/sched/pauses/stopping/gc:seconds")
				var k Key
				x := uint64(1)
				for b.Loop() {
					if mode == "forced" {
						gcStep(tbl, &k, &x, size.n)
						runtime.GC()
						continue
					}
					for c := gcCycles(); gcCycles() == c; {
						gcStep(tbl, &k, &x, size.n)
					}
				}
				b.StopTimer()
				after, afterStop := readGCPauses(), readHist("/sched/pauses/stopping/gc:seconds")
				runtime.KeepAlive(tbl)
				h := pauseDelta(before, after)
				b.ReportMetric(h.quantile(0.5)*1e6, "p50-µs")
				b.ReportMetric(h.quantile(0.99)*1e6, "p99-µs")
				b.ReportMetric(h.quantile(1)*1e6, "max-µs")
				b.ReportMetric(float64(h.over(1e-3)), "over-1ms")
				hs := pauseDelta(beforeStop, afterStop)
				b.ReportMetric(hs.quantile(0.5)*1e6, "stop-p50-µs")
				b.ReportMetric(hs.quantile(1)*1e6, "stop-max-µs")
			})
		}
	}
}

// gcStep is the mutator's work between checks: 64 KiB of garbage and 64
// lookups, so the world is stopped while a goroutine is busy in the table.
func gcStep(tbl *Table, k *Key, x *uint64, n uint32) {
	gcGarbage = make([]byte, 64<<10)
	if tbl == nil || noLookups {
		return
	}
	for range 64 {
		benchKey(k, pick(x, n))
		tbl.Lookup(k)
	}
}

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func readGCPauses() *metrics.Float64Histogram { return readHist("/sched/pauses/total/gc:seconds") }

func readHist(name string) *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

// pauseHist is a histogram of pauses in seconds.
type pauseHist struct {
	counts  []uint64
	buckets []float64
	total   uint64
}

func pauseDelta(before, after *metrics.Float64Histogram) pauseHist {
	h := pauseHist{counts: make([]uint64, len(after.Counts)), buckets: after.Buckets}
	for i := range after.Counts {
		h.counts[i] = after.Counts[i] - before.Counts[i]
		h.total += h.counts[i]
	}
	return h
}

// quantile returns the upper edge of the bucket holding quantile q (the
// lower edge when that bucket is open-ended).
func (h pauseHist) quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if math.IsInf(h.buckets[i+1], 1) {
				return h.buckets[i]
			}
			return h.buckets[i+1]
		}
	}
	return h.buckets[len(h.buckets)-1]
}

// over counts the pauses in buckets entirely above limit seconds.
func (h pauseHist) over(limit float64) uint64 {
	var n uint64
	for i, c := range h.counts {
		if h.buckets[i] >= limit {
			n += c
		}
	}
	return n
}
