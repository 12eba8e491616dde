package xsk

// place is where a UMEM chunk is. Every chunk is in exactly one place.
type place uint8

const (
	// placeFree: on the free list, owned by the Socket.
	placeFree place = iota
	// placeFill: in the fill ring, inside the kernel being received
	// into, or waiting in the RX ring.
	placeFill
	// placeCaller: handed to the caller by Receive or Alloc.
	placeCaller
	// placeTx: in the TX ring, being sent by the kernel, or waiting in
	// the completion ring.
	placeTx
)

// frames is the free list of UMEM chunks plus the place of every chunk.
//
// The place array turns the rule "never reuse a frame in flight" into a
// check on every transition: a chunk enters the free list only from the
// caller or the completion ring, and only the caller may transmit or
// release it. A second Release of the same frame, or a Transmit of a frame
// the caller gave away, is refused and counted instead of corrupting the
// free list. The cost is one byte per chunk and one load per frame.
type frames struct {
	free  []uint64 // stack of chunk base addresses
	place []place  // indexed by chunk number
	shift uint     // log2(frame size)
	mask  uint64   // frame size - 1
	size  uint64   // UMEM length
}

func newFrames(n, frameSize int) frames {
	f := frames{
		free:  make([]uint64, n),
		place: make([]place, n),
		mask:  uint64(frameSize - 1),
		size:  uint64(n) * uint64(frameSize),
	}
	for frameSize > 1 {
		f.shift++
		frameSize >>= 1
	}
	// Hand out low addresses first: pop from the end of a descending list.
	for i := range f.free {
		f.free[i] = uint64(n-1-i) << f.shift
	}
	return f
}

// chunk returns the chunk number of addr and whether addr is in the UMEM.
func (f *frames) chunk(addr uint64) (uint64, bool) {
	if addr >= f.size {
		return 0, false
	}
	return addr >> f.shift, true
}

// pop takes a free chunk and moves it to to.
func (f *frames) pop(to place) (uint64, bool) {
	n := len(f.free)
	if n == 0 {
		return 0, false
	}
	addr := f.free[n-1]
	f.free = f.free[:n-1]
	f.place[addr>>f.shift] = to
	return addr, true
}

// push returns the chunk holding addr to the free list if it is now in
// from; it reports false, changing nothing, otherwise.
func (f *frames) push(addr uint64, from place) bool {
	c, ok := f.chunk(addr)
	if !ok || f.place[c] != from {
		return false
	}
	f.place[c] = placeFree
	f.free = append(f.free, c<<f.shift)
	return true
}
