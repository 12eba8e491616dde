//go:build amd64 && !race

package conntrack

import (
	"sync/atomic"
	"unsafe"
)

// storeSync writes v to the sync word *w with a plain store, as
// plainstore.Store64 does, but written in Go so that it inlines into
// SyncCounter.Count: an aligned 8-byte store is one MOV on amd64, which readers'
// atomic loads see whole, and x86 keeps stores in program order. The
// race build uses the atomic Store (sync_store_other.go).
func storeSync(w *atomic.Uint64, v uint64) {
	*(*uint64)(unsafe.Pointer(w)) = v
}
