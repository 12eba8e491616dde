package conntrack

import (
	"github.com/afvs/afvs/internal/plainstore"
	"testing"
	"unsafe"
)

// TestStoreWords checks the relaxed stores publish uses against the entry's
// layout: storeWords is assembly on amd64 and writes by offset, so a field
// moved in entry must fail here rather than corrupt entries.
func TestStoreWords(t *testing.T) {
	var e entry
	e.meta.Store(0x5a5a)
	w := entryWords{1, 2, 3, 4, 5, 6, 7}
	storeWords(&e, &w)
	got := [...]uint64{e.caddr[0].Load(), e.caddr[1].Load(), e.vaddr[0].Load(), e.vaddr[1].Load(), e.ports.Load(), e.since.Load(), e.bind.Load()}
	if got != [...]uint64{1, 2, 3, 4, 5, 6, 7} {
		t.Fatalf("storeWords wrote caddr, vaddr, ports, since, bind = %v, want 1..7", got)
	}
	if m := e.meta.Load(); m != 0x5a5a {
		t.Fatalf("storeWords changed meta to %#x", m)
	}
	if off := [...]uintptr{unsafe.Offsetof(e.ports), unsafe.Offsetof(e.meta), unsafe.Offsetof(e.since), unsafe.Offsetof(e.bind)}; off != [...]uintptr{32, 40, 48, 56} {
		t.Fatalf("entry offsets of ports, meta, since, bind = %v, publish_amd64.s assumes 32 40 48 56", off)
	}
	plainstore.Store64(&e.meta, 9)
	var b bucket
	plainstore.Store32(&b.latch, 1)
	plainstore.Store32(&b.tags[3], 8)
	if e.meta.Load() != 9 || b.latch.Load() != 1 || b.tags[3].Load() != 8 || b.tags[2].Load() != 0 || b.used.Load() != 0 {
		t.Fatalf("relaxed stores: meta %d latch %d tag %d", e.meta.Load(), b.latch.Load(), b.tags[3].Load())
	}
}
