//go:build amd64 && !race

package dataplane

import "sync/atomic"

// storeCounter writes v to c with a plain MOV. Each counter has one
// writer, its worker, and readers only need to see whole words, which an
// aligned 8-byte MOV gives on amd64; Go's atomic store is an XCHG, a full
// fence that first drains every store the batch made to its frames, and
// Flush makes a dozen of them per batch. The race build uses the atomic
// store (publish_other.go), so the detector sees every access.
//
//go:noescape
func storeCounter(c *atomic.Uint64, v uint64)
