//go:build !linux || race

package conntrack

// offHeap reports whether tables live outside the Go heap in this build.
// Under the race detector they do not: the detector only watches Go
// memory, and the -race tests exist to watch the table.
const offHeap = false

// region is the memory of one store, here a pointer-free Go allocation
// the collector never scans.
type region struct {
	mem []byte
}

func allocRegion(size uintptr) (region, error) {
	return region{mem: make([]byte, size)}, nil
}

func (r region) mapped() bool { return false }

func (r region) free() {}

// hugePageSize is what the mapped build aligns its arrays to.
const hugePageSize = 2 << 20
