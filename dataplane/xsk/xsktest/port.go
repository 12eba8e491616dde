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
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/internal/plainstore"
)

// Who holds a chunk: each chunk has a mark, a word that says whether the
// user holds it. Only the user's chunks are handed back to the port (by
// Transmit and Release), and the check that a chunk handed back is the
// user's is the one the contract needs; the list a chunk the port holds
// is on (free, the RX ring, the TX ring or sent) is looked up only to
// name it in a misuse report.
//
// A delivery marks its chunk with its place on the RX ring, and the user
// holds the chunk once Receive's head has passed that place, so Receive
// marks nothing: it moves its head. A chunk Alloc gives the user is
// marked markAlloc. Transmit and Release mark what they take back
// markPort, as a chunk on the free list, the TX ring or sent is.
const (
	markPort  uint64 = 0 // on one of the port's lists
	markAlloc uint64 = 1 // allocated by the user
	markRX    uint64 = 2 // delivered at RX ring place i: markRX + i
)

// userHolds reports whether a chunk marked m is the user's when Receive's
// head is head: allocated, or delivered before the head. markPort wraps
// to the largest word and fails the one comparison.
func userHolds(m, head uint64) bool { return m-1 <= head }

// Headroom is the room a Port leaves before every received frame, as an
// AF_XDP socket's XDP headroom does.
const Headroom = 256

// Port is an in-memory AF_XDP socket. It implements the port interfaces of
// the dataplane and bench packages.
//
// The socket methods (Fill, Receive, Release, Alloc, Transmit, Kick,
// Complete, Wait, TxPending, DropReceived, SetRXLen) belong to one
// goroutine at a time, as a real socket's rings do. Deliver and
// DeliverBatch, the inspection methods and the exported fields' reads
// after a run may be used from other goroutines.
//
// The state is split as a real socket's is between the kernel and the
// user. The free list, which both sides take chunks from and return them
// to, is guarded by a mutex. The RX ring is a single-producer,
// single-consumer ring: deliverers, one at a time under the mutex, write
// descriptors past its tail and then publish the tail; Receive reads up to
// the tail and publishes its head, without the mutex. The ownership marks
// and the TX ring are the socket goroutine's alone; the counts the
// inspection methods read are published as atomic words.
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

	umem  []byte
	fs    int
	shift uint // log2(fs): a chunk's index is its address >> shift
	ready chan struct{}

	// The RX ring: the frame delivered i-th is at rx[(i-rxBase)&rxMask]
	// for rxHead <= i < rxTail. Deliverers write past the tail under mu,
	// then store it; the socket goroutine reads up to the tail it loads,
	// then stores the head. The ring has room for every chunk, so a
	// delivery never overwrites a descriptor not yet received. A delivery
	// into an empty ring moves the base to its place, so that a ring
	// drained each batch uses the same slots each batch, as few cache
	// lines as a batch needs.
	rx     []xsk.Desc
	rxMask uint64
	rxHead atomic.Uint64
	rxTail atomic.Uint64
	rxBase atomic.Uint64 // stored under mu before the tail that uses it

	mu sync.Mutex // guards what follows, to the socket's part
	// The free chunks are free[top:], a stack that grows down, each as
	// the descriptor a delivery into it gets (Addr at Headroom, Len the
	// room there): the chunk returned last, at top, is taken first, and
	// DeliverBatch takes a run of them in that order with one copy.
	free     []xsk.Desc
	top      int
	stage    []xsk.Desc // DeliverBatch's descriptors when the ring wraps
	closed   bool
	dropped  int
	recorded []Sent

	// The socket goroutine's part. tx[i&txMask] is sent (kicked, not
	// completed) for txHead <= i < txKick and on the TX ring for
	// txKick <= i < txTail.
	mark   []uint64 // by chunk index, written under mu by deliverers
	tx     []xsk.Desc
	txMask uint64
	// back[^i&txMask] is what tx[i&txMask]'s chunk will be on the free
	// stack (see free): a run of sent frames is a run of back in
	// reverse, last sent first, which Complete pushes with one copy.
	back                   []xsk.Desc
	txHead, txKick, txTail uint64
	// Published for the inspection methods by the socket goroutine, its
	// only writer.
	pubRing, pubSent, nSent, kicks atomic.Uint64
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
	ring := 1 << bits.Len(uint(frames-1)) // the rings' size: a power of two, room for every chunk
	p := &Port{umem: make([]byte, frames*frameSize), fs: frameSize, shift: uint(bits.TrailingZeros(uint(frameSize))),
		ready: make(chan struct{}, 1), rx: make([]xsk.Desc, ring), rxMask: uint64(ring - 1),
		free: make([]xsk.Desc, frames), stage: make([]xsk.Desc, frames),
		mark: make([]uint64, frames), tx: make([]xsk.Desc, ring), txMask: uint64(ring - 1),
		back: make([]xsk.Desc, ring)}
	for i := range p.free {
		p.free[i] = p.rxDesc(uint64(i * frameSize)) // chunk 0 on top
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
// holds that chunk (an address past the UMEM has an index past mark).
func (p *Port) owned(addr uint64) (uint64, bool) {
	i := addr >> (p.shift & 63) // the mask spares the shift its range check
	return i, i < uint64(len(p.mark)) && userHolds(p.mark[i], p.rxHead.Load())
}

// notOwned reports a chunk handed back to go to, which the user does not
// hold: addr is outside the UMEM, or its chunk is on one of the port's
// lists, which it names.
func (p *Port) notOwned(addr uint64, to string) {
	i := addr >> p.shift
	if i >= uint64(len(p.mark)) {
		p.misuse("address %#x is outside the %d-byte UMEM", addr, len(p.umem))
		return
	}
	p.misuse("frame %#x is %s, not with the user (moving it to %s)", i*uint64(p.fs), p.where(i), to)
}

// where names the port's list that holds chunk i, which the user does
// not hold. It runs on the socket goroutine, which owns the TX ring and
// may read the RX ring up to the tail it loads.
func (p *Port) where(i uint64) string {
	on := func(ring []xsk.Desc, mask, from, to uint64) bool {
		for j := from; j < to; j++ {
			if ring[j&mask].Addr>>p.shift == i {
				return true
			}
		}
		return false
	}
	switch {
	case on(p.rx, p.rxMask, p.rxHead.Load()-p.rxBase.Load(), p.rxTail.Load()-p.rxBase.Load()):
		return "received"
	case on(p.tx, p.txMask, p.txKick, p.txTail):
		return "on the TX ring"
	case on(p.tx, p.txMask, p.txHead, p.txKick):
		return "sent"
	}
	return "free"
}

func (p *Port) chunk(addr uint64) uint64 { return addr &^ uint64(p.fs-1) }

// rxDesc is the descriptor of a delivery into the chunk holding addr, as
// the free stack keeps it: the frame at Headroom, with all the room after.
func (p *Port) rxDesc(addr uint64) xsk.Desc {
	return xsk.Desc{Addr: p.chunk(addr) + Headroom, Len: uint32(p.fs - Headroom)}
}

// push puts the chunk holding addr on top of the free stack; the caller
// holds mu.
func (p *Port) push(addr uint64) {
	p.top--
	p.free[p.top] = p.rxDesc(addr)
}

// rxSlot returns the slot of the RX ring for the frame delivered t-th,
// the tail, moving the base to t if the ring is empty; the caller holds
// mu. The socket goroutine loads the base after the tail that covers
// frames placed by it, and a ring it found empty it does not read again
// before a later tail.
func (p *Port) rxSlot(t uint64) uint64 {
	if p.rxHead.Load() == t {
		p.rxBase.Store(t)
		return 0
	}
	return (t - p.rxBase.Load()) & p.rxMask
}

// publish makes the descriptors up to tail, which the caller (holding
// mu) wrote, visible to Receive, and signals a Wait if the ring was empty
// before them.
func (p *Port) publish(was, tail uint64) {
	// The tail's store and the head's load are sequentially consistent,
	// as are Receive's store of the head and Wait's load of the tail: a
	// Wait that found the ring empty stored its head before this load, so
	// this delivery sees the ring was empty and signals.
	p.rxTail.Store(tail)
	if p.rxHead.Load() == was {
		// Only a ring that was empty needs the signal: a Wait that found
		// frames waiting returned without blocking, and one that blocks
		// found the ring empty, so this delivery's signal or an earlier
		// one that nobody took wakes it.
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
}

// take pops the free chunk on top of the stack and marks it m; the caller
// holds mu and has checked that a chunk is free. A chunk on the free list
// that is marked the user's is one the port's lists held twice, a fault
// of the port that no user can cause, reported as misuse all the same.
func (p *Port) take(m uint64) uint64 {
	a := p.free[p.top].Addr - Headroom
	p.top++
	p.markTaken(a, m)
	return a
}

func (p *Port) markTaken(a, m uint64) {
	i := a >> p.shift
	if p.mark[i] != markPort {
		p.misuse("frame %#x is free and with the user: the port held it twice", a)
	}
	p.mark[i] = m
}

// Deliver queues frame as received, at Headroom in a free chunk, as the
// kernel does when a frame is redirected to the socket. It reports false,
// and counts a drop, when no chunk is free, the frame does not fit one, or
// the port is closed.
func (p *Port) Deliver(frame []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.top == len(p.free) || Headroom+len(frame) > p.fs {
		p.dropped++
		return false
	}
	t := p.rxTail.Load()
	a := p.take(markRX + t)
	copy(p.umem[a+Headroom:], frame)
	p.rx[p.rxSlot(t)] = xsk.Desc{Addr: a + Headroom, Len: uint32(len(frame))}
	p.publish(t, t+1)
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
// and must not call the port; descs is the port's, to be written only
// during the call.
func (p *Port) DeliverBatch(n int, fill func(umem []byte, descs []xsk.Desc)) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := min(n, len(p.free)-p.top)
	if p.closed {
		k = 0
	}
	if k < n {
		p.dropped++
	}
	if k == 0 {
		return 0
	}
	// The chunks are the top k of the free stack, in the order Deliver
	// takes them one by one. The descriptors go straight on the RX ring
	// past its tail, which no one reads before the tail moves, unless
	// they would wrap around its end.
	chunks := p.free[p.top : p.top+k]
	t := p.rxTail.Load()
	start := p.rxSlot(t)
	descs := p.stage[:k]
	if start+uint64(k) <= uint64(len(p.rx)) {
		descs = p.rx[start : start+uint64(k)]
	}
	copy(descs, chunks)
	fill(p.umem, descs)
	q := 0
	for q < k {
		q += queued(p.mark, descs[q:], chunks[q:], p.shift, t+uint64(q))
		if q == k {
			break
		}
		if d := descs[q]; d.Addr != chunks[q].Addr || d.Len > chunks[q].Len {
			p.dropped++
			break
		}
		p.markTaken(descs[q].Addr-Headroom, markRX+t+uint64(q)) // a chunk held twice
		q++
	}
	if &descs[0] == &p.stage[0] {
		m := copy(p.rx[start:], descs[:q])
		copy(p.rx, descs[m:q])
	}
	p.top += q
	if q > 0 {
		p.publish(t, t+uint64(q))
	}
	return q
}

// queued marks the chunks of descs, which fill wrote, delivered at RX
// ring places from at on, from the first, as long as each descriptor is
// at the address chunks gave it and within the room chunks gave it, and
// its chunk is marked the port's, and returns how many.
//
//go:noinline // its own registers: inlined, the loop spills the caller's
func queued(mark []uint64, descs, chunks []xsk.Desc, shift uint, at uint64) int {
	chunks = chunks[:len(descs)]
	for i, d := range descs {
		c := chunks[i]
		j := c.Addr >> (shift & 63)
		if d.Addr != c.Addr || d.Len > c.Len || mark[j] != markPort {
			return i
		}
		mark[j] = markRX + at + uint64(i)
	}
	return len(descs)
}

// Fill gives free chunks to the kernel for receiving. The fake receives
// into its free list directly, so there is nothing to do; it returns 0.
func (p *Port) Fill() int { return 0 }

// Receive moves up to len(out) received frames to the user, oldest first,
// and returns how many. The user owns them until Release or Transmit:
// the head that moves past them makes them the user's (see markRX).
func (p *Port) Receive(out []xsk.Desc) int {
	h := p.rxHead.Load()
	n := int(min(p.rxTail.Load()-h, uint64(len(out))))
	if n == 0 {
		return 0
	}
	start := (h - p.rxBase.Load()) & p.rxMask
	m := copy(out[:n], p.rx[start:])
	copy(out[m:n], p.rx)
	// After the copy: a delivery may reuse the slots once it sees the head.
	p.rxHead.Store(h + uint64(n))
	return n
}

// Release returns the chunk holding addr, which the user owns, to the free
// list.
func (p *Port) Release(addr uint64) {
	i, ok := p.owned(addr)
	if !ok {
		p.notOwned(addr, "free")
		return
	}
	p.mark[i] = markPort
	p.mu.Lock()
	p.push(addr)
	p.mu.Unlock()
}

// Alloc takes a free chunk for the user to build a frame in and returns
// its start; false when none is free.
func (p *Port) Alloc() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.top == len(p.free) {
		return 0, false
	}
	return p.take(markAlloc), true
}

// Transmit puts frames the user owns on the TX ring, in order, until the
// ring is full, and returns how many it took; the user keeps the rest.
// Nothing leaves before Kick.
func (p *Port) Transmit(descs []xsk.Desc) int {
	limit := p.TxCap
	if limit <= 0 {
		limit = len(p.mark)
	}
	if room := max(limit-int(p.txTail-p.txHead), 0); len(descs) > room {
		descs = descs[:room]
	}
	// The ring has room for every chunk, and takes only the user's.
	start := p.txTail & p.txMask
	first := min(len(descs), len(p.tx)-int(start))
	n := p.takeBack(start, descs[:first])
	if n == first {
		n += p.takeBack(0, descs[first:])
	}
	p.txTail += uint64(n)
	if n < len(descs) {
		if d := descs[n]; !p.within(d) {
			p.misuse("descriptor %#x+%d runs past its chunk", d.Addr, d.Len)
		} else {
			p.notOwned(d.Addr, "the TX ring")
		}
	}
	if p.Record && n > 0 {
		p.mu.Lock()
		for _, d := range descs[:n] {
			p.recorded = append(p.recorded, Sent{Desc: d, Frame: append([]byte(nil), p.umem[d.Addr:d.Addr+uint64(d.Len)]...)})
		}
		p.mu.Unlock()
	}
	plainstore.Unordered64(&p.pubRing, p.txTail-p.txKick)
	plainstore.Unordered64(&p.nSent, p.nSent.Load()+uint64(n))
	return n
}

// within reports whether d lies inside one chunk of the UMEM.
func (p *Port) within(d xsk.Desc) bool {
	fs := uint64(p.fs)
	return d.Addr+uint64(d.Len) <= uint64(len(p.umem)) && d.Addr&(fs-1)+uint64(d.Len) <= fs
}

// takeBack puts ds on the TX ring at tx[start:], which has room for
// them, from the first, as long as each descriptor lies inside one chunk
// and that chunk is the user's, and returns how many it took.
func (p *Port) takeBack(start uint64, ds []xsk.Desc) int {
	end := uint64(len(p.back)) - start // back[^i&txMask] for start <= i&txMask < start+len(ds)
	n := takeBack(p.mark, p.back[end-uint64(len(ds)):end], ds, p.shift, uint64(p.fs), p.rxHead.Load())
	copy(p.tx[start:], ds[:n])
	return n
}

// takeBack writes the chunk of each descriptor of ds, as the free stack
// keeps it, to back in reverse, from the first, as long as the descriptor
// lies inside one chunk of fs bytes and that chunk is the user's (with
// Receive's head at head), marks those chunks the port's and returns how
// many it took. A chunk whose index is within mark is within the UMEM,
// so only the offset in the chunk needs a check of its own.
//
//go:noinline // its own registers: inlined, the loop spills the caller's
func takeBack(mark []uint64, back, ds []xsk.Desc, shift uint, fs, head uint64) int {
	back = back[:len(ds)]
	for j, d := range ds {
		off := d.Addr & (fs - 1)
		i := d.Addr >> (shift & 63)
		if i >= uint64(len(mark)) || off+uint64(d.Len) > fs || !userHolds(mark[i], head) {
			return j
		}
		mark[i] = markPort
		back[len(back)-1-j] = xsk.Desc{Addr: d.Addr - off + Headroom, Len: uint32(fs - Headroom)}
	}
	return len(ds)
}

// Kick sends what is on the TX ring: each frame goes to Wire, if set, and
// waits for Complete to return its chunk.
func (p *Port) Kick() error {
	from, to := p.txKick, p.txTail
	if p.KickBudget > 0 && to-from > uint64(p.KickBudget) {
		to = from + uint64(p.KickBudget)
	}
	p.txKick = to
	plainstore.Unordered64(&p.kicks, p.kicks.Load()+1)
	plainstore.Unordered64(&p.pubRing, p.txTail-to)
	plainstore.Unordered64(&p.pubSent, to-p.txHead)
	if wire := p.Wire; wire != nil {
		// The chunks are sent, so nothing else writes them until the
		// owner's next Complete.
		for j := from; j < to; j++ {
			d := p.tx[j&p.txMask]
			wire(p.umem[d.Addr : d.Addr+uint64(d.Len)])
		}
	}
	return nil
}

// TxPending reports whether frames wait on the TX ring for a Kick.
func (p *Port) TxPending() bool { return p.pubRing.Load() != 0 }

// Complete returns the chunks of sent frames to the free list and says how
// many.
func (p *Port) Complete() int {
	h, k := p.txHead, p.txKick
	n := int(k - h)
	if n == 0 {
		return 0
	}
	// The sent frames' chunks are back[^(k-1)&txMask:] on, last sent
	// first, wrapping around back's end.
	start := ^(k - 1) & p.txMask
	m := min(n, len(p.back)-int(start))
	p.mu.Lock()
	// The stack has room for every chunk; the last sent goes on top.
	top := p.top - n
	copy(p.free[top:], p.back[start:start+uint64(m)])
	copy(p.free[top+m:top+n], p.back)
	p.top = top
	p.mu.Unlock()
	p.txHead = k
	if k == p.txTail { // nothing left: the next batch uses the same slots
		p.txHead, p.txKick, p.txTail = 0, 0, 0
	}
	plainstore.Unordered64(&p.pubSent, 0)
	return n
}

// Wait blocks until a frame is waiting for Receive or timeout passes.
func (p *Port) Wait(timeout time.Duration) error {
	if p.rxTail.Load() != p.rxHead.Load() {
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
	return len(p.free) - p.top
}

// Frames counts every chunk of the UMEM.
func (p *Port) Frames() int { return len(p.mark) }

// Pending counts received frames not yet taken by Receive.
func (p *Port) Pending() int {
	h := p.rxHead.Load()
	return int(p.rxTail.Load() - h)
}

// InFlight counts frames on the TX ring or sent and not yet completed.
func (p *Port) InFlight() int { return int(p.pubRing.Load() + p.pubSent.Load()) }

// Recorded returns the frames transmitted while Record was set, oldest
// first.
func (p *Port) Recorded() []Sent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sent(nil), p.recorded...)
}

// Transmitted counts the frames Transmit accepted.
func (p *Port) Transmitted() int { return int(p.nSent.Load()) }

// Kicks counts the calls to Kick.
func (p *Port) Kicks() int { return int(p.kicks.Load()) }

// Dropped counts the frames Deliver refused.
func (p *Port) Dropped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// DropReceived discards the frames waiting for Receive, returning their
// chunks to the free list.
func (p *Port) DropReceived() {
	h := p.rxHead.Load()
	t := p.rxTail.Load()
	p.mu.Lock()
	for j := h; j < t; j++ {
		a := p.rx[(j-p.rxBase.Load())&p.rxMask].Addr
		p.mark[a>>p.shift] = markPort
		p.push(a)
	}
	p.mu.Unlock()
	p.rxHead.Store(t)
}

// Frame returns the bytes a descriptor of this port points at.
func (p *Port) Frame(d xsk.Desc) []byte { return p.umem[d.Addr : d.Addr+uint64(d.Len)] }

// SetRXLen changes the length of the i-th received frame not yet taken, so
// a test can hand the user a descriptor the kernel would never produce.
func (p *Port) SetRXLen(i int, n uint32) {
	h := p.rxHead.Load()
	if uint64(i) >= p.rxTail.Load()-h {
		panic(fmt.Sprintf("xsktest: SetRXLen(%d): %d frames wait for Receive", i, p.rxTail.Load()-h))
	}
	p.rx[(h+uint64(i)-p.rxBase.Load())&p.rxMask].Len = n
}

// ResetRecorded forgets the recorded frames.
func (p *Port) ResetRecorded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recorded = p.recorded[:0]
}
