package conntrack

import (
	"fmt"
	"testing"
	"unsafe"
)

// span is a run of a struct's bytes: a field or a group of fields.
type span struct {
	name      string
	off, size uintptr
}

// between is the span from the start of the field at first to the end of
// the field at last, in one struct.
func between(name string, first, last, lastSize uintptr) span {
	return span{name, first, last + lastSize - first}
}

// checkApart fails unless every span in written is far enough from every
// other span, in written or read, that no 64-byte line can hold bytes of
// both wherever the struct lands: 63 bytes or more between them.
func checkApart(t *testing.T, what string, read, written []span) {
	t.Helper()
	all := append(append([]span(nil), read...), written...)
	for i, w := range written {
		for j, o := range all {
			if j == len(read)+i {
				continue
			}
			a, b := w, o
			if a.off > b.off {
				a, b = b, a
			}
			if b.off < a.off+a.size+63 {
				t.Errorf("%s: %s (bytes %d..%d) and %s (bytes %d..%d) can share a cache line: one is written while workers run",
					what, w.name, w.off, w.off+w.size-1, o.name, o.off, o.off+o.size-1)
			}
		}
	}
}

// TestLayoutSharedWrites checks the Table's and the store's grouping:
// the words that workers or the housekeeping goroutine write while
// packets flow are a line away from the words every packet reads and
// from each other, so that no write bounces a line another core reads.
func TestLayoutSharedWrites(t *testing.T) {
	var tb Table
	def := unsafe.Offsetof(tb.def)
	var d defense
	checkApart(t, "Table",
		[]span{
			between("the packet path's words (conns..closed)", unsafe.Offsetof(tb.conns), unsafe.Offsetof(tb.closed), unsafe.Sizeof(tb.closed)),
			between("def.rate and def.secure", def+unsafe.Offsetof(d.rate), def+unsafe.Offsetof(d.secure), unsafe.Sizeof(d.secure)),
		},
		append([]span{
			between("the sweep cursors", unsafe.Offsetof(tb.rsweep), unsafe.Offsetof(tb.tsweep), unsafe.Sizeof(tb.tsweep)),
			between("the defence's mutex and levels", def+unsafe.Offsetof(d.mu), def+unsafe.Offsetof(d.rng), unsafe.Sizeof(d.rng)),
			{"def.counter", def + unsafe.Offsetof(d.counter), unsafe.Sizeof(d.counter)},
		}, stripes(unsafe.Offsetof(tb.stats))...))
	// A Table is one allocation: nothing after it may share def.counter's
	// line either.
	if end := def + unsafe.Offsetof(d.counter) + unsafe.Sizeof(d.counter); unsafe.Sizeof(tb) < end+63 {
		t.Errorf("Table: def.counter ends at byte %d of %d: the next allocation can share its line", end, unsafe.Sizeof(tb))
	}
	var s store
	checkApart(t, "store",
		[]span{between("the lookup's words (buckets..cleanup)", unsafe.Offsetof(s.buckets), unsafe.Offsetof(s.cleanup), unsafe.Sizeof(s.cleanup))},
		[]span{
			{"live", unsafe.Offsetof(s.live), unsafe.Sizeof(s.live)},
			{"cursor", unsafe.Offsetof(s.cursor), unsafe.Sizeof(s.cursor)},
		})
	if end := unsafe.Offsetof(s.cursor) + unsafe.Sizeof(s.cursor); unsafe.Sizeof(s) < end+63 {
		t.Errorf("store: cursor ends at byte %d of %d: the next allocation can share its line", end, unsafe.Sizeof(s))
	}
}

// stripes are the counters of each stats stripe, at off in a Table; a
// stripe's padding is not among them.
func stripes(off uintptr) []span {
	var st stats
	var c counters
	size := unsafe.Offsetof(c.reopened) + unsafe.Sizeof(c.reopened)
	out := make([]span, len(st))
	for i := range st {
		out[i] = span{fmt.Sprintf("stats stripe %d", i), off + uintptr(i)*unsafe.Sizeof(c), size}
	}
	return out
}

// TestStoreSlots checks the store's layout: the bucket headers packed in
// one array of 64-byte lines at the start of the region, then the entries,
// one 64-byte line each, bucket b's slots numbered b*bucketSlots + i, the
// numbering the arrays indexed by slot (expiry index, sync and sequence
// words) share; and a slot or bucket past the end panics instead of
// reading memory the store does not own.
func TestStoreSlots(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 10_000, Templates: 100, Clock: &ManualClock{}})
	for _, s := range []*store{tbl.conns, tbl.tmpls} {
		start := uintptr(unsafe.Pointer(&s.mem.mem[0]))
		hdrs := uintptr(unsafe.Pointer(s.bucket(0)))
		ents := uintptr(unsafe.Pointer(s.entry(0)))
		if hdrs != start || hdrs%64 != 0 {
			t.Fatalf("headers at %#x, want the region's start %#x on a cache line", hdrs, start)
		}
		if want := hdrs + uintptr(s.nb)*sizeofBucket; ents != want {
			t.Fatalf("entries at %#x, want %#x, right after the %d headers", ents, want, s.nb)
		}
		if got, want := s.slots(), s.nb*bucketSlots; got != want {
			t.Fatalf("%d slots in %d buckets, want %d", got, s.nb, want)
		}
		for b := range s.nb {
			if h := uintptr(unsafe.Pointer(s.bucket(b))); h != hdrs+uintptr(b)*sizeofBucket {
				t.Fatalf("bucket %d's header at %#x, want %#x", b, h, hdrs+uintptr(b)*sizeofBucket)
			}
			for i := range uint32(bucketSlots) {
				slot := b*bucketSlots + i
				if e := uintptr(unsafe.Pointer(s.entry(slot))); e != ents+uintptr(slot)*sizeofEntry {
					t.Fatalf("slot %d (bucket %d, entry %d) at %#x, want %#x", slot, b, i, e, ents+uintptr(slot)*sizeofEntry)
				}
			}
		}
		if end := ents + uintptr(s.slots())*sizeofEntry; end > start+uintptr(len(s.mem.mem)) {
			t.Fatalf("entries end at %#x, past the region's end %#x", end, start+uintptr(len(s.mem.mem)))
		}
		for _, bad := range []func(){
			func() { s.entry(s.slots()) },
			func() { s.entry(^uint32(0)) },
			func() { s.bucket(s.nb) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("an access past the %d slots did not panic", s.slots())
					}
				}()
				bad()
			}()
		}
	}
}
