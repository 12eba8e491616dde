//go:build !amd64 || race

package conntrack

import "sync/atomic"

// storeSync is the atomic Store on other architectures, where a plain
// 8-byte store may not be whole, and in the race build, so the detector
// sees every access.
func storeSync(w *atomic.Uint64, v uint64) { w.Store(v) }
