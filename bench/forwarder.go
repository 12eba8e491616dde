package bench

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xsk"
	"golang.org/x/sys/unix"
)

// fwdBatch matches the director's worker batch, so the baseline does the
// same number of ring operations per frame.
const fwdBatch = 64

// Forwarder is the baseline: a plain AF_XDP forwarder that receives on one
// socket, copies each frame into a frame of the egress socket, rewrites the
// two MAC addresses and sends it. It is the director's two-interface path
// (RX ring, one copy across UMEMs, TX ring, kick) with none of its work:
// no parsing, no connection table, no scheduling, no encapsulation.
//
// Poll, Run and Stop follow the worker's contract: Poll and Run belong to
// one goroutine; Stop and Stats may be called from any.
type Forwarder struct {
	// CPU, when not negative, is where Run pins its thread, as the
	// director pins its workers; NewForwarder leaves it at -1.
	CPU int
	// PollConfig is how Run waits for frames and which busy-poll socket
	// options it gives the receiving socket: a worker's, in the same
	// mode. NewForwarder sets director.DefaultPoll, afvs's default.
	PollConfig director.PollConfig
	busy       atomic.Pointer[xsk.BusyPoll]
	rx         rxPort
	tx         txPort
	dstMAC     [6]byte
	srcMAC     [6]byte
	in         [fwdBatch]xsk.Desc
	out        [fwdBatch]xsk.Desc
	stop       atomic.Bool
	tid        atomic.Int32 // Run's OS thread, once it has started

	received  atomic.Uint64
	forwarded atomic.Uint64
	dropped   atomic.Uint64
}

// ForwarderStats are the forwarder's counters.
type ForwarderStats struct {
	Received  uint64 // frames taken from the RX ring
	Forwarded uint64 // frames queued on the egress TX ring
	Dropped   uint64 // no free egress frame or a full TX ring
	// Batches is the receiving socket's receives that returned frames
	// (xsk.Counters.RxBatches; 0 on a port without counters).
	Batches uint64
}

// NewForwarder forwards from rx to tx, writing dst and src into each
// frame's Ethernet header.
func NewForwarder(rx *xsk.Socket, tx *xsk.Socket, dst, src [6]byte) *Forwarder {
	return newForwarder(rx, tx, dst, src)
}

func newForwarder(rx rxPort, tx txPort, dst, src [6]byte) *Forwarder {
	return &Forwarder{CPU: -1, PollConfig: director.DefaultPoll(), rx: rx, tx: tx, dstMAC: dst, srcMAC: src}
}

// Poll runs one turn and returns how many frames it received.
func (f *Forwarder) Poll() int {
	rx, tx := f.rx, f.tx
	rx.Fill()
	n := rx.Receive(f.in[:])
	if n == 0 {
		return 0
	}
	tx.Complete()
	src, dst := rx.UMEM(), tx.UMEM()
	off := uint64(tx.Headroom())
	fs := uint64(tx.FrameSize())
	m := 0
	var dropped uint64
	for _, d := range f.in[:n] {
		addr, ok := tx.Alloc()
		if !ok || d.Len < 12 || off+uint64(d.Len) > fs {
			if ok {
				tx.Release(addr)
			}
			dropped++
			rx.Release(d.Addr)
			continue
		}
		b := dst[addr+off : addr+off+uint64(d.Len)]
		copy(b, src[d.Addr:d.Addr+uint64(d.Len)])
		copy(b[0:6], f.dstMAC[:])
		copy(b[6:12], f.srcMAC[:])
		rx.Release(d.Addr)
		f.out[m] = xsk.Desc{Addr: addr + off, Len: d.Len}
		m++
	}
	k := tx.Transmit(f.out[:m])
	for _, d := range f.out[k:m] {
		tx.Release(d.Addr &^ (fs - 1))
		dropped++
	}
	_ = tx.Kick() // the bench counts what was sent, not kicks
	f.received.Add(uint64(n))
	f.forwarded.Add(uint64(k))
	if dropped > 0 {
		f.dropped.Add(dropped)
	}
	return n
}

// Run polls until Stop as a director's worker in mode PollConfig does: its loop
// (director.Spin), and on a real socket the same busy-poll options
// (director.SocketBusyPoll), set from the polling thread. It fails only
// when it cannot pin its thread to CPU.
func (f *Forwarder) Run() error {
	runtime.LockOSThread()
	f.tid.Store(int32(unix.Gettid()))
	// A pinned thread is not handed back to the scheduler: it exits with
	// the goroutine.
	if f.CPU >= 0 {
		if err := nic.Pin(f.CPU); err != nil {
			return fmt.Errorf("baseline forwarder: %w", err)
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	if s, ok := f.rx.(interface {
		SetBusyPoll(on bool, usecs, budget int) xsk.BusyPoll
	}); ok {
		b := s.SetBusyPoll(director.SocketBusyPoll(f.PollConfig))
		f.busy.Store(&b)
	}
	director.Spin(&f.stop, f.PollConfig, f.Poll, f.rx.Wait)
	f.tx.Complete()
	return nil
}

// BusyPoll is the busy-poll options the kernel accepted for the receiving
// socket, once Run has set them; ok is false before, or on a port that has
// none (an in-memory one).
func (f *Forwarder) BusyPoll() (b xsk.BusyPoll, ok bool) {
	if p := f.busy.Load(); p != nil {
		return *p, true
	}
	return xsk.BusyPoll{}, false
}

// ThreadID is the OS thread Run polls on, once it has started; else 0.
func (f *Forwarder) ThreadID() int { return int(f.tid.Load()) }

// Stop makes Run return after its current turn.
func (f *Forwarder) Stop() { f.stop.Store(true) }

// Stats reads the counters.
func (f *Forwarder) Stats() ForwarderStats {
	st := ForwarderStats{Received: f.received.Load(), Forwarded: f.forwarded.Load(), Dropped: f.dropped.Load()}
	if c, ok := f.rx.(interface{ Counters() xsk.Counters }); ok {
		st.Batches = c.Counters().RxBatches
	}
	return st
}
