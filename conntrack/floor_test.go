package conntrack

import (
	"fmt"
	"testing"
	"unsafe"
)

// BenchmarkMemoryFloor measures what the machine's memory allows, on a
// region the size of a 10M-entry table, allocated like one (huge pages,
// outside the heap), so the lookup benchmarks in the same run can be read
// against it:
//
//   - access=dependent is a chain of random cache-line loads, each
//     address read from the line before (a random cyclic permutation):
//     one DRAM round trip per line, the least a single lookup at 10M
//     entries can wait, whatever the table's layout.
//   - access=independent loads random lines whose addresses do not depend
//     on each other, as LookupBatch's passes do: the time per line when
//     the core keeps as many misses in flight as it can.
func BenchmarkMemoryFloor(b *testing.B) {
	mem, err := allocRegion(uintptr(storeBytes(10_000_000, false)))
	if err != nil {
		b.Fatal(err)
	}
	defer mem.free()
	lines := unsafe.Slice((*[16]uint32)(unsafe.Pointer(&mem.mem[0])), len(mem.mem)/64)
	n := uint32(len(lines))
	// Shuffle the lines and link each to the next, closing the list into
	// one cycle: the chase visits every line once per lap and never
	// settles into a short loop the caches could hold.
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	x := uint64(7)
	for i := n - 1; i > 0; i-- {
		j := pick(&x, i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i := range n {
		lines[perm[i]][0] = perm[(i+1)%n]
	}
	b.Run("access=dependent", func(b *testing.B) {
		p := uint32(0)
		for b.Loop() {
			p = lines[p][0]
		}
		sinkFloor = p
	})
	b.Run("access=independent", func(b *testing.B) {
		x := uint64(1)
		var sum uint32
		for b.Loop() {
			sum += lines[pick(&x, n)][0]
		}
		sinkFloor = sum
	})
	b.Run("access=prefetched", func(b *testing.B) {
		x := uint64(1)
		var sum uint32
		var idx [64]uint32
		var addrs [64]uintptr
		for b.Loop() {
			for i := range idx {
				idx[i] = pick(&x, n)
				addrs[i] = uintptr(unsafe.Pointer(&lines[idx[i]]))
			}
			prefetch(addrs[:])
			for _, j := range idx {
				sum += lines[j][0]
			}
		}
		sinkFloor = sum
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/line")
	})
}

// BenchmarkMemoryFloorLookup measures the memory floor of a lookup in a
// 10M-entry table as the store lays it out: per key, the lines a hit
// reads (two random bucket headers from the packed header array and one
// random entry), 64 keys' lines prefetched at once and then loaded, as
// if the entry's address did not depend on the headers. No lookup can
// read those lines faster, so ns/key less what the same loads cost in a
// table that fits the caches is the least a 10M-flow frame can cost
// more than a 1K-flow frame on this machine.
func BenchmarkMemoryFloorLookup(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"10M", 10_000_000}} {
		s, err := newStore(size.n, false)
		if err != nil {
			b.Fatal(err)
		}
		// Fault every line in, as New does.
		for i := range s.nb {
			s.bucket(i).used.Store(0)
		}
		for i := range s.slots() {
			s.entry(i).meta.Store(0)
		}
		// headers=2 is a hit as the table reads it; headers=1 is what a
		// hit would read in a table that found most keys through one
		// header, the floor such a design would have.
		for _, headers := range []int{2, 1} {
			b.Run(fmt.Sprintf("entries=%s/headers=%d", size.name, headers), func(b *testing.B) {
				x := uint64(1)
				var sum uint64
				var hs [2 * 64]*bucket
				var es [64]*entry
				var addrs [3 * 64]uintptr
				for b.Loop() {
					a := 0
					for k := range es {
						for h := range headers {
							hs[2*k+h] = s.bucket(pick(&x, s.nb))
							addrs[a] = uintptr(unsafe.Pointer(hs[2*k+h]))
							a++
						}
						es[k] = s.entry(pick(&x, s.slots()))
						addrs[a] = uintptr(unsafe.Pointer(es[k]))
						a++
					}
					prefetch(addrs[:a])
					for k, e := range es {
						sum += e.meta.Load()
						for h := range headers {
							sum += uint64(hs[2*k+h].used.Load())
						}
					}
				}
				sinkFloor = uint32(sum)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/key")
			})
		}
		s.close()
	}
}

var sinkFloor uint32

// BenchmarkPrefetchOverlap asks whether the machine overlaps a prefetch
// with other work or only with other prefetches, which decides how a batch
// of lookups must issue its prefetches. Each of 64 keys per batch loads
// one random line of a region the size of a 10M-entry table and then runs
// a chain of dependent arithmetic on what it read, about as long as the
// rest of a frame's processing:
//
//   - lines=0 is the work alone;
//   - prefetch=none loads each line when its key is processed;
//   - prefetch=burst prefetches the batch's 64 lines together first, as
//     LookupBatch's stages do;
//   - prefetch=ahead-N prefetches each key's line N keys before the key
//     is processed, so that each line has N keys' work to arrive in: a
//     pipeline that hides the misses behind the processing, where
//     prefetches retire without waiting.
//
// Where a prefetch that misses the TLB holds up the core until its page
// walk is done, ahead-N costs more than burst (whose walks overlap each
// other), and spreading the lookups over the frames' processing cannot
// beat LookupBatch's bursts.
func BenchmarkPrefetchOverlap(b *testing.B) {
	mem, err := allocRegion(uintptr(storeBytes(10_000_000, false)))
	if err != nil {
		b.Fatal(err)
	}
	defer mem.free()
	lines := unsafe.Slice((*[8]uint64)(unsafe.Pointer(&mem.mem[0])), len(mem.mem)/64)
	n := uint32(len(lines))
	for _, mode := range []struct {
		name  string
		ahead int // -1: none, 0: burst
	}{{"lines=0", 0}, {"prefetch=none", -1}, {"prefetch=burst", 0}, {"prefetch=ahead-8", 8}, {"prefetch=ahead-32", 32}} {
		b.Run(mode.name, func(b *testing.B) {
			const batch = 64
			x := uint64(1)
			var sum uint64
			var idx [batch]uint32
			var addrs [batch]uintptr
			load := func(i int) {
				if mode.name != "lines=0" {
					sum += lines[idx[i]][0]
				}
				sum = overlapWork(sum)
			}
			for b.Loop() {
				for i := range idx {
					idx[i] = pick(&x, n)
					addrs[i] = uintptr(unsafe.Pointer(&lines[idx[i]]))
				}
				switch {
				case mode.ahead < 0:
					for i := range idx {
						load(i)
					}
				case mode.ahead == 0:
					if mode.name != "lines=0" {
						prefetch(addrs[:])
					}
					for i := range idx {
						load(i)
					}
				default:
					for i := range batch + mode.ahead {
						if i < batch {
							prefetch(addrs[i : i+1])
						}
						if k := i - mode.ahead; k >= 0 {
							load(k)
						}
					}
				}
			}
			sinkFloor = uint32(sum)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/key")
		})
	}
}

// overlapWork is BenchmarkPrefetchOverlap's stand-in for a frame's
// processing: a chain of dependent multiply-xor-shift rounds on x.
func overlapWork(x uint64) uint64 {
	for range 30 {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}
