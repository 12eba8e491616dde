//go:build amd64 && !race

package plainstore

import (
	"sync/atomic"
	"unsafe"
)

// Store64 writes v to p with a plain store.
//
//go:noescape
func Store64(p *atomic.Uint64, v uint64)

// Store32 writes v to p with a plain store.
//
//go:noescape
func Store32(p *atomic.Uint32, v uint32)

// Unordered64 writes v to p with a plain store written in Go, so that it
// inlines into its caller. Unlike Store64, the compiler may move it
// against the caller's other plain stores: use it only for a word whose
// order against other memory does not matter (a counter its readers take
// as a hint), never to publish data.
func Unordered64(p *atomic.Uint64, v uint64) {
	*(*uint64)(unsafe.Pointer(p)) = v
}
