//go:build linux && !race

package conntrack

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// offHeap reports whether tables live outside the Go heap in this build.
const offHeap = true

// hugePageSize is the size the slot arrays are aligned to so that transparent
// huge pages can back all of them.
const hugePageSize = 2 << 20

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault a range in
// as if written, without writing it.
const madvPopulateWrite = 23

// region is the memory of one store: an anonymous mapping outside the Go
// heap. The collector neither scans nor sweeps it and it does not count
// towards the heap the GC paces itself by, so a 10M-entry table adds
// nothing to the stop-the-world pauses (BenchmarkGCPause) and does not let
// the heap goal grow by the table's size.
type region struct {
	mem  []byte // the aligned part the store uses
	full []byte // the whole mapping, for munmap
}

// allocRegion maps size bytes aligned to 2 MiB, asks for transparent huge
// pages (lookups land at random places in hundreds of megabytes; with 4
// KiB pages nearly every one would also miss the TLB, and under
// virtualisation a TLB miss is a two-dimensional page walk) and faults it
// all in now, so the first packets to reach a page never pay a page fault
// and a machine without the memory fails here rather than under load.
// Advice that the kernel refuses only costs speed and is ignored.
func allocRegion(size uintptr) (region, error) {
	full, err := syscall.Mmap(-1, 0, int(size+hugePageSize), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return region{}, fmt.Errorf("mapping %d bytes: %w", size, err)
	}
	base := uintptr(unsafe.Pointer(&full[0]))
	off := (base+hugePageSize-1)&^(hugePageSize-1) - base
	mem := full[off : off+size : off+size]
	_ = syscall.Madvise(mem, syscall.MADV_HUGEPAGE)
	if err := syscall.Madvise(mem, madvPopulateWrite); err != nil {
		if !errors.Is(err, syscall.EINVAL) {
			_ = syscall.Munmap(full)
			return region{}, fmt.Errorf("populating %d bytes: %w", size, err)
		}
		// An older kernel: touch every page instead.
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 0
		}
	}
	return region{mem: mem, full: full}, nil
}

// mapped reports whether free must be called to give the memory back.
func (r region) mapped() bool { return r.full != nil }

func (r region) free() {
	if r.full != nil {
		_ = syscall.Munmap(r.full)
	}
}
