package header

import (
	"bytes"
	"testing"
)

// TestPrefetchChangesNothing prefetches an empty slice, a one-byte one and
// a frame, and requires no panic, no allocation and the bytes unchanged.
func TestPrefetchChangesNothing(t *testing.T) {
	f := build(t, spec{sport: 1, dport: 80})
	want := append([]byte(nil), f...)
	if a := testing.AllocsPerRun(100, func() {
		Prefetch(nil)
		Prefetch(f[:1])
		Prefetch(f)
		Prefetch(f[len(f):])
	}); a != 0 {
		t.Fatalf("%v allocations per run", a)
	}
	if !bytes.Equal(f, want) {
		t.Fatal("Prefetch changed the frame")
	}
}
