//go:build !amd64 || race

package dataplane

import "sync/atomic"

// storeCounter is publish_amd64.go's store for other architectures and
// the race build: Go's atomic store.
func storeCounter(c *atomic.Uint64, v uint64) { c.Store(v) }
