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
	CPU    int
	rx     rxPort
	tx     txPort
	dstMAC [6]byte
	srcMAC [6]byte
	in     [fwdBatch]xsk.Desc
	out    [fwdBatch]xsk.Desc
	stop   atomic.Bool
	tid    atomic.Int32 // Run's OS thread, once it has started

	received  atomic.Uint64
	forwarded atomic.Uint64
	dropped   atomic.Uint64
}

// ForwarderStats are the forwarder's counters.
type ForwarderStats struct {
	Received  uint64 // frames taken from the RX ring
	Forwarded uint64 // frames queued on the egress TX ring
	Dropped   uint64 // no free egress frame or a full TX ring
}

// NewForwarder forwards from rx to tx, writing dst and src into each
// frame's Ethernet header.
func NewForwarder(rx *xsk.Socket, tx *xsk.Socket, dst, src [6]byte) *Forwarder {
	return newForwarder(rx, tx, dst, src)
}

func newForwarder(rx rxPort, tx txPort, dst, src [6]byte) *Forwarder {
	return &Forwarder{CPU: -1, rx: rx, tx: tx, dstMAC: dst, srcMAC: src}
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

// Run polls until Stop, spinning while frames come and sleeping in poll(2)
// when idle, as the director's workers do. It fails only when it cannot
// pin its thread to CPU.
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
	director.Spin(&f.stop, director.DefaultPoll(), f.Poll, f.rx.Wait)
	f.tx.Complete()
	return nil
}

// ThreadID is the OS thread Run polls on, once it has started; else 0.
func (f *Forwarder) ThreadID() int { return int(f.tid.Load()) }

// Stop makes Run return after its current turn.
func (f *Forwarder) Stop() { f.stop.Store(true) }

// Stats reads the counters.
func (f *Forwarder) Stats() ForwarderStats {
	return ForwarderStats{Received: f.received.Load(), Forwarded: f.forwarded.Load(), Dropped: f.dropped.Load()}
}
