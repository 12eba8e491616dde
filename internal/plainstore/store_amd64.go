//go:build amd64 && !race

package plainstore

import "sync/atomic"

// Store64 writes v to p with a plain store.
//
//go:noescape
func Store64(p *atomic.Uint64, v uint64)

// Store32 writes v to p with a plain store.
//
//go:noescape
func Store32(p *atomic.Uint32, v uint32)
