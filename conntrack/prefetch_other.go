//go:build !amd64

package conntrack

// prefetch is a no-op where there is no assembly version: LookupBatch is
// still correct, only its misses overlap less.
func prefetch([]uintptr) {}
