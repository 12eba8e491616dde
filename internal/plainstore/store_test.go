package plainstore

import (
	"sync/atomic"
	"testing"
)

// TestStores: each store writes exactly its word and nothing beside it.
func TestStores(t *testing.T) {
	var w64 [3]atomic.Uint64
	var w32 [3]atomic.Uint32
	for _, v := range []uint64{0, 1, 0xdead_beef_cafe_f00d, ^uint64(0)} {
		w64[0].Store(7)
		w64[2].Store(9)
		Store64(&w64[1], v)
		if w64[1].Load() != v || w64[0].Load() != 7 || w64[2].Load() != 9 {
			t.Fatalf("Store64(%#x): words %d %#x %d", v, w64[0].Load(), w64[1].Load(), w64[2].Load())
		}
		Unordered64(&w64[1], ^v)
		if w64[1].Load() != ^v || w64[0].Load() != 7 || w64[2].Load() != 9 {
			t.Fatalf("Unordered64(%#x): words %d %#x %d", ^v, w64[0].Load(), w64[1].Load(), w64[2].Load())
		}
		v32 := uint32(v >> 7)
		w32[0].Store(7)
		w32[2].Store(9)
		Store32(&w32[1], v32)
		if w32[1].Load() != v32 || w32[0].Load() != 7 || w32[2].Load() != 9 {
			t.Fatalf("Store32(%#x): words %d %#x %d", v32, w32[0].Load(), w32[1].Load(), w32[2].Load())
		}
	}
}
