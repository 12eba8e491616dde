// Package xsktest is an in-memory AF_XDP socket for tests and benchmarks:
// the one fake port behind the dataplane's workers, the bench package's
// generator and forwarder, and the sockets of dataplane/platformtest.
//
// A Port has a UMEM of fixed-size chunks, like an xsk.Socket, and tracks
// where every chunk is: free, received (waiting on the RX ring), with the
// user, on the TX ring, or sent (waiting for Complete). Every method that
// is given a chunk checks that the chunk is where the contract says it
// must be, so a user that releases a frame twice, transmits a frame it
// does not own or loses one fails the test instead of corrupting memory
// quietly.
package xsktest

import (
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

// Who holds a chunk. A chunk the port holds is on one of its lists (free,
// rx, ring or sent), which say where it is; only the user's chunks need a
// mark of their own, since only they are handed back to the port (by
// Transmit and Release), and the check that a chunk handed back is the
// user's is the one the contract needs. So a frame moving between the
// port's lists (delivered, kicked, completed) costs no per-chunk mark,
// and the list a chunk is on is looked up only to name it in a misuse
// report.
const (
	placePort uint8 = iota // on one of the port's lists
	placeUser              // with the user: received and not yet released, or allocated
)

// Headroom is the room a Port leaves before every received frame, as an
// AF_XDP socket's XDP headroom does.
const Headroom = 256

// Port is an in-memory AF_XDP socket. It implements the port interfaces of
// the dataplane and bench packages.
//
// The socket methods (Fill, Receive, Release, Alloc, Transmit, Kick,
// Complete, Wait) belong to one goroutine at a time, as a real socket's
// rings do. Deliver, the inspection methods and the exported fields' reads
// after a run may be used from other goroutines: a mutex guards the state.
type Port struct {
	// TxCap is how many frames the TX ring holds (transmitted and not yet
	// completed); 0 means as many as there are chunks. Set it before use.
	TxCap int
	// Record keeps a copy of every frame Transmit accepts, in Sent.
	Record bool
	// Wire, when set, is called by Kick for every frame it sends, outside
	// the port's lock, with the frame in the port's UMEM: it must copy what
	// it keeps before it returns. platformtest uses it to carry frames to
	// other ports.
	Wire func(frame []byte)
	// KickBudget is how many frames one Kick sends at most; the rest stay
	// on the TX ring for the next Kick, as a copy-mode socket's do when
	// the device is busy. 0 means all of them.
	KickBudget int
	// Misuse is called when the user breaks the socket contract (a frame
	// released twice, a descriptor outside the UMEM); nil means panic.
	Misuse func(msg string)

	mu       sync.Mutex
	umem     []byte
	fs       int
	shift    uint    // log2(fs): a chunk's index is its address >> shift
	place    []uint8 // by chunk index
	free     []uint64
	rx       []xsk.Desc
	ring     []xsk.Desc // transmitted, not kicked
	sent     []xsk.Desc // kicked, not completed
	kicking  []xsk.Desc // Kick's scratch: what it hands to Wire
	ready    chan struct{}
	closed   bool
	recorded []Sent
	nSent    int
	kicks    int
	dropped  int
}

// Sent is a frame a Port transmitted: its descriptor and a copy of its
// bytes.
type Sent struct {
	Desc  xsk.Desc
	Frame []byte
}

// New returns a Port of frames chunks of frameSize bytes, every chunk
// free. frameSize must be a power of two.
func New(frames, frameSize int) *Port {
	if frames <= 0 || frameSize <= 0 || frameSize&(frameSize-1) != 0 {
		panic(fmt.Sprintf("xsktest: %d frames of %d bytes: need a positive count and a power-of-two size", frames, frameSize))
	}
	p := &Port{umem: make([]byte, frames*frameSize), fs: frameSize, shift: uint(bits.TrailingZeros(uint(frameSize))), place: make([]uint8, frames),
		free: make([]uint64, 0, frames), rx: make([]xsk.Desc, 0, frames), ring: make([]xsk.Desc, 0, frames),
		sent: make([]xsk.Desc, 0, frames), kicking: make([]xsk.Desc, 0, frames), ready: make(chan struct{}, 1)}
	for i := frames - 1; i >= 0; i-- {
		p.free = append(p.free, uint64(i*frameSize))
	}
	return p
}

func (p *Port) misuse(format string, args ...any) {
	msg := fmt.Sprintf("xsktest: "+format, args...)
	if p.Misuse != nil {
		p.Misuse(msg)
		return
	}
	panic(msg)
}

// owned returns the index of the chunk holding addr and whether the user
// holds that chunk (an address past the UMEM has an index past place).
func (p *Port) owned(addr uint64) (uint64, bool) {
	i := addr >> (p.shift & 63) // the mask spares the shift its range check
	return i, i < uint64(len(p.place)) && p.place[i] == placeUser
}

// notOwned reports a chunk handed back to go to, which the user does not
// hold: addr is outside the UMEM, or its chunk is on one of the port's
// lists, which it names.
func (p *Port) notOwned(addr uint64, to string) {
	i := addr >> p.shift
	if i >= uint64(len(p.place)) {
		p.misuse("address %#x is outside the %d-byte UMEM", addr, len(p.umem))
		return
	}
	p.misuse("frame %#x is %s, not with the user (moving it to %s)", i*uint64(p.fs), p.where(i), to)
}

// where names the port's list that holds chunk i, which the user does
// not hold.
func (p *Port) where(i uint64) string {
	on := func(ds []xsk.Desc) bool {
		for _, d := range ds {
			if d.Addr>>p.shift == i {
				return true
			}
		}
		return false
	}
	switch {
	case on(p.rx):
		return "received"
	case on(p.ring):
		return "on the TX ring"
	case on(p.sent):
		return "sent"
	}
	return "free"
}

// give marks the chunks of ds, which the port held, as the user's. A
// chunk the user holds already is one the port's lists held twice, a
// fault of the port that no user can cause, reported as misuse all the
// same.
func (p *Port) give(ds []xsk.Desc) {
	place, shift := p.place, p.shift&63
	for _, d := range ds {
		i := d.Addr >> shift
		if place[i] != placePort {
			p.misuse("frame %#x is with the user already: the port held it twice", i*uint64(p.fs))
		}
		place[i] = placeUser
	}
}

func (p *Port) chunk(addr uint64) uint64 { return addr &^ uint64(p.fs-1) }

// Deliver queues frame as received, at Headroom in a free chunk, as the
// kernel does when a frame is redirected to the socket. It reports false,
// and counts a drop, when no chunk is free, the frame does not fit one, or
// the port is closed.
func (p *Port) Deliver(frame []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) == 0 || Headroom+len(frame) > p.fs {
		p.dropped++
		return false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	copy(p.umem[a+Headroom:], frame)
	p.rx = append(p.rx, xsk.Desc{Addr: a + Headroom, Len: uint32(len(frame))})
	if len(p.rx) == 1 {
		// Only a queue that was empty needs the signal: a Wait that
		// found frames waiting returned without blocking, and one that
		// blocks found the queue empty, so this delivery's signal or an
		// earlier one that nobody took wakes it.
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// DeliverBatch queues up to n frames as received, as n Deliver calls
// would, but under one lock, without a copy and with one call of fill for
// the whole batch. fill gets the UMEM and descs, one per free chunk taken:
// descs[i].Addr is where the i-th frame starts (after Headroom) and
// descs[i].Len the room it has there. fill writes each frame in place and
// sets its Len to the frame's length. When fewer than n chunks are free,
// or the port is closed, fill gets fewer descriptors (none) and a drop is
// counted. A descriptor fill moved or made longer than its room ends the
// batch there, with a drop counted, and its chunk and the rest stay free.
// It returns how many frames it queued. fill runs under the port's lock
// and must not call the port; descs is the port's receive queue, to be
// written only during the call.
func (p *Port) DeliverBatch(n int, fill func(umem []byte, descs []xsk.Desc)) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := min(n, len(p.free))
	if p.closed {
		k = 0
	}
	if k < n {
		p.dropped++
	}
	if k == 0 {
		return 0
	}
	// The chunks are the last k of the free list, taken from its end as
	// Deliver takes them one by one. The descriptors go straight on the
	// receive queue, which has room for every chunk.
	free := p.free[len(p.free)-k:]
	was := len(p.rx)
	descs := p.rx[was : was+k]
	room := uint32(p.fs - Headroom)
	for i := range descs {
		descs[i] = xsk.Desc{Addr: free[len(free)-1-i] + Headroom, Len: room}
	}
	fill(p.umem, descs)
	q := 0
	for ; q < k; q++ {
		d := descs[q]
		a := free[len(free)-1-q]
		if d.Addr != a+Headroom || d.Len > room {
			p.dropped++
			break
		}
	}
	p.rx = p.rx[:was+q]
	p.free = p.free[:len(p.free)-q]
	if was == 0 && q > 0 {
		select { // see Deliver
		case p.ready <- struct{}{}:
		default:
		}
	}
	return q
}

// Fill gives free chunks to the kernel for receiving. The fake receives
// into its free list directly, so there is nothing to do; it returns 0.
func (p *Port) Fill() int { return 0 }

// Receive moves up to len(out) received frames to the user, oldest first,
// and returns how many. The user owns them until Release or Transmit.
func (p *Port) Receive(out []xsk.Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := copy(out, p.rx)
	p.give(out[:n])
	// Shift rather than reslice, so the queue keeps its capacity and the
	// fake allocates nothing in the steady state.
	m := copy(p.rx, p.rx[n:])
	p.rx = p.rx[:m]
	return n
}

// Release returns the chunk holding addr, which the user owns, to the free
// list.
func (p *Port) Release(addr uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.owned(addr); ok {
		p.place[i] = placePort
		p.free = append(p.free, p.chunk(addr))
		return
	}
	p.notOwned(addr, "free")
}

// Alloc takes a free chunk for the user to build a frame in and returns
// its start; false when none is free.
func (p *Port) Alloc() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.give([]xsk.Desc{{Addr: a}})
	return a, true
}

// Transmit puts frames the user owns on the TX ring, in order, until the
// ring is full, and returns how many it took; the user keeps the rest.
// Nothing leaves before Kick.
func (p *Port) Transmit(descs []xsk.Desc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := p.TxCap
	if limit <= 0 {
		limit = len(p.place)
	}
	if room := max(limit-len(p.ring)-len(p.sent), 0); len(descs) > room {
		descs = descs[:room]
	}
	n := p.takeBack(descs)
	taken := descs[:n]
	// The ring has room for every chunk, and these are the user's.
	p.ring = append(p.ring, taken...)
	if n < len(descs) {
		if d := descs[n]; !p.within(d) {
			p.misuse("descriptor %#x+%d runs past its chunk", d.Addr, d.Len)
		} else {
			p.notOwned(d.Addr, "the TX ring")
		}
	}
	if p.Record {
		for _, d := range taken {
			p.recorded = append(p.recorded, Sent{Desc: d, Frame: append([]byte(nil), p.umem[d.Addr:d.Addr+uint64(d.Len)]...)})
		}
	}
	p.nSent += n
	return n
}

// within reports whether d lies inside one chunk of the UMEM.
func (p *Port) within(d xsk.Desc) bool {
	fs := uint64(p.fs)
	return d.Addr+uint64(d.Len) <= uint64(len(p.umem)) && d.Addr&(fs-1)+uint64(d.Len) <= fs
}

// takeBack marks the chunks of ds the port's, from the first, as long as
// each descriptor lies inside one chunk and that chunk is the user's, and
// returns how many it took. It calls nothing, so that the loop keeps
// what it needs in registers instead of loading it again after every
// store to place.
func (p *Port) takeBack(ds []xsk.Desc) int {
	umemLen, fs := uint64(len(p.umem)), uint64(p.fs)
	place, shift := p.place, p.shift&63
	for j, d := range ds {
		i := d.Addr >> shift
		if d.Addr+uint64(d.Len) > umemLen || d.Addr&(fs-1)+uint64(d.Len) > fs ||
			i >= uint64(len(place)) || place[i] != placeUser {
			return j
		}
		place[i] = placePort
	}
	return len(ds)
}

// Kick sends what is on the TX ring: each frame goes to Wire, if set, and
// waits for Complete to return its chunk.
func (p *Port) Kick() error {
	p.mu.Lock()
	p.kicks++
	out := p.ring
	if p.KickBudget > 0 && len(out) > p.KickBudget {
		out = out[:p.KickBudget]
	}
	wire := p.Wire
	if wire != nil {
		p.kicking = append(p.kicking[:0], out...)
	}
	p.sent = append(p.sent, out...)
	p.ring = p.ring[:copy(p.ring, p.ring[len(out):])]
	p.mu.Unlock()
	if wire != nil {
		// The chunks are sent, so nothing else writes them until the
		// owner's next Complete.
		for _, d := range p.kicking {
			wire(p.umem[d.Addr : d.Addr+uint64(d.Len)])
		}
	}
	return nil
}

// TxPending reports whether frames wait on the TX ring for a Kick.
func (p *Port) TxPending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ring) > 0
}

// Complete returns the chunks of sent frames to the free list and says how
// many.
func (p *Port) Complete() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.sent)
	// The free list has room for every chunk.
	free, mask := p.free[len(p.free):len(p.free)+n], ^uint64(p.fs-1)
	for j, d := range p.sent {
		free[j] = d.Addr & mask
	}
	p.free = p.free[:len(p.free)+n]
	p.sent = p.sent[:0]
	return n
}

// Wait blocks until a frame is waiting for Receive or timeout passes.
func (p *Port) Wait(timeout time.Duration) error {
	p.mu.Lock()
	n := len(p.rx)
	p.mu.Unlock()
	if n > 0 {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.ready:
	case <-t.C:
	}
	return nil
}

// UMEM returns the port's memory.
func (p *Port) UMEM() []byte { return p.umem }

// FrameSize returns the chunk size.
func (p *Port) FrameSize() int { return p.fs }

// Headroom returns the room left before received frames.
func (p *Port) Headroom() int { return Headroom }

// Close makes Deliver refuse frames. It does not check for lost chunks.
func (p *Port) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// Free counts the free chunks.
func (p *Port) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// Frames counts every chunk of the UMEM.
func (p *Port) Frames() int { return len(p.place) }

// Pending counts received frames not yet taken by Receive.
func (p *Port) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rx)
}

// InFlight counts frames on the TX ring or sent and not yet completed.
func (p *Port) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ring) + len(p.sent)
}

// Recorded returns the frames transmitted while Record was set, oldest
// first.
func (p *Port) Recorded() []Sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sent(nil), p.recorded...)
}

// Transmitted counts the frames Transmit accepted.
func (p *Port) Transmitted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nSent
}

// Kicks counts the calls to Kick.
func (p *Port) Kicks() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kicks
}

// Dropped counts the frames Deliver refused.
func (p *Port) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// DropReceived discards the frames waiting for Receive, returning their
// chunks to the free list.
func (p *Port) DropReceived() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.rx {
		p.free = append(p.free, p.chunk(d.Addr))
	}
	p.rx = p.rx[:0]
}

// Frame returns the bytes a descriptor of this port points at.
func (p *Port) Frame(d xsk.Desc) []byte { return p.umem[d.Addr : d.Addr+uint64(d.Len)] }

// SetRXLen changes the length of the i-th received frame not yet taken, so
// a test can hand the user a descriptor the kernel would never produce.
func (p *Port) SetRXLen(i int, n uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rx[i].Len = n
}

// ResetRecorded forgets the recorded frames.
func (p *Port) ResetRecorded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recorded = p.recorded[:0]
}
