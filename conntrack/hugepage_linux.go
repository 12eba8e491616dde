//go:build linux

package conntrack

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of a big
// slot array with transparent huge pages (effective when THP is "always"
// or "madvise"). Lookups land at random places in hundreds of megabytes:
// with 4 KiB pages nearly every one also misses the TLB, and under
// virtualisation a TLB miss is a two-dimensional page walk. It must run
// before the memory is first touched, which New guarantees: a fresh large
// allocation comes straight from the OS, untouched. Failure only costs
// speed, so it is ignored.
func adviseHuge(p unsafe.Pointer, n uintptr) {
	const huge = 2 << 20
	start := (uintptr(p) + huge - 1) &^ (huge - 1)
	end := (uintptr(p) + n) &^ (huge - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
}
