package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is the shared part of one mmapped AF_XDP ring: the kernel's producer
// and consumer words, the flags word, and our cached copies of both indices.
//
// The indices are free-running uint32 counters; an entry lives at
// index&mask. Only the side that owns an index writes it. We touch the
// shared words with atomics only at batch edges: the other side's index is
// reloaded when the cached copy says there is not enough room or data, and
// our own index is published once per batch. Go's atomics are sequentially
// consistent, which gives the acquire (after loading the other side's index)
// and release (before publishing ours) ordering the ring protocol needs.
type ring struct {
	mem      []byte
	producer *uint32
	consumer *uint32
	flags    *uint32
	mask     uint32
	size     uint32
	// cachedProd and cachedCons are our last view of the indices. On a
	// ring we produce to, cachedProd is authoritative and cachedCons is a
	// possibly stale copy of the kernel's consumer; on a ring we consume
	// from, the other way round.
	cachedProd uint32
	cachedCons uint32
}

// mapRing mmaps one ring of n entries of entSize bytes at the page offset
// pgoff, whose layout the kernel described in off.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, n int, entSize uintptr) (ring, error) {
	length := int(off.Desc) + n*int(entSize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, fmt.Errorf("mmap %d bytes at page offset %#x: %w", length, pgoff, err)
	}
	r := ring{
		mem:      mem,
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		mask:     uint32(n - 1),
		size:     uint32(n),
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r, nil
}

func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	*r = ring{}
	return err
}

// free returns how many entries we can produce, reloading the kernel's
// consumer only when the cached view shows fewer than want.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.cachedProd - r.cachedCons)
	if n >= want {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r.size - (r.cachedProd - r.cachedCons)
}

// avail returns how many entries we can consume, reloading the kernel's
// producer only when the cached view shows fewer than want.
func (r *ring) avail(want uint32) uint32 {
	n := r.cachedProd - r.cachedCons
	if n >= want {
		return n
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	return r.cachedProd - r.cachedCons
}

// publishProducer hands the entries written so far to the kernel.
func (r *ring) publishProducer() { atomic.StoreUint32(r.producer, r.cachedProd) }

// publishConsumer gives the entries read so far back to the kernel.
func (r *ring) publishConsumer() { atomic.StoreUint32(r.consumer, r.cachedCons) }

// needWakeup reports whether the kernel asked to be kicked for this ring.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// outstanding is how many entries sit between the kernel's two indices
// right now, read fresh; used by accounting, not the hot path.
func (r *ring) outstanding() uint32 {
	return atomic.LoadUint32(r.producer) - atomic.LoadUint32(r.consumer)
}

// addrRing is the fill or completion ring: entries are UMEM addresses.
type addrRing struct {
	ring
	ents []uint64
}

func mapAddrRing(fd int, pgoff int64, off unix.XDPRingOffset, n int) (addrRing, error) {
	r, err := mapRing(fd, pgoff, off, n, 8)
	if err != nil {
		return addrRing{}, err
	}
	ents := unsafe.Slice((*uint64)(unsafe.Pointer(&r.mem[off.Desc])), n)
	return addrRing{ring: r, ents: ents}, nil
}

func (r *addrRing) unmap() error { r.ents = nil; return r.ring.unmap() }

// descRing is the RX or TX ring: entries are descriptors.
type descRing struct {
	ring
	ents []unix.XDPDesc
}

func mapDescRing(fd int, pgoff int64, off unix.XDPRingOffset, n int) (descRing, error) {
	r, err := mapRing(fd, pgoff, off, n, unsafe.Sizeof(unix.XDPDesc{}))
	if err != nil {
		return descRing{}, err
	}
	ents := unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&r.mem[off.Desc])), n)
	return descRing{ring: r, ents: ents}, nil
}

func (r *descRing) unmap() error { r.ents = nil; return r.ring.unmap() }
