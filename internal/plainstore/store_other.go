//go:build !amd64 || race

package plainstore

import "sync/atomic"

// Store64 is the atomic Store on other architectures and in the race
// build.
func Store64(p *atomic.Uint64, v uint64) { p.Store(v) }

// Store32 is the atomic Store on other architectures and in the race
// build.
func Store32(p *atomic.Uint32, v uint32) { p.Store(v) }

// Unordered64 is the atomic Store on other architectures and in the race
// build.
func Unordered64(p *atomic.Uint64, v uint64) { p.Store(v) }
