package xsk

import (
	"fmt"

	"github.com/asavie/xdp"
)

// Baseline wraps github.com/asavie/xdp v0.3.3 behind the Socket's batch
// verbs, so that benchmarks can run the same workload over both ring
// layers. It exists for comparison only; the dataplane uses Socket.
//
// It inherits that library's behaviour, which is why Socket exists:
// ring indices are plain loads and stores; finding free frames scans the
// whole frame table; Receive marks frames free while the caller still holds
// them, so a Fill before Release can hand a held frame to the kernel;
// Transmit makes a sendto on every call without need_wakeup; there is no
// UMEM headroom registration and no TX budget option. A Baseline is owned
// by one goroutine.
type Baseline struct {
	x     *xdp.Socket
	opt   Options
	txBuf []xdp.Desc
}

// OpenBaseline opens an asavie/xdp socket on queue of ifindex with the
// sizes of opt. Copy, ZeroCopy and TxBudget are not supported by the
// library and must be unset.
func OpenBaseline(ifindex, queue int, opt Options) (*Baseline, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("open baseline xsk: %w", err)
	}
	if opt.Copy || opt.ZeroCopy || opt.TxBudget != 0 {
		return nil, fmt.Errorf("open baseline xsk: copy %v, zero-copy %v, tx budget %d: asavie/xdp supports none of them",
			opt.Copy, opt.ZeroCopy, opt.TxBudget)
	}
	x, err := xdp.NewSocket(ifindex, queue, &xdp.SocketOptions{
		NumFrames:              opt.NumFrames,
		FrameSize:              opt.FrameSize,
		FillRingNumDescs:       opt.FillSize,
		CompletionRingNumDescs: opt.CompletionSize,
		RxRingNumDescs:         opt.RxSize,
		TxRingNumDescs:         opt.TxSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open baseline xsk on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return &Baseline{x: x, opt: opt, txBuf: make([]xdp.Desc, 0, max(opt.TxSize, 1))}, nil
}

// FD is the socket's file descriptor, to be stored in an XSKMAP.
func (b *Baseline) FD() int { return b.x.FD() }

// Frame is the data of d.
func (b *Baseline) Frame(d Desc) []byte {
	return b.x.GetFrame(xdp.Desc{Addr: d.Addr, Len: d.Len})
}

// Fill gives every frame the library considers free to the fill ring.
func (b *Baseline) Fill() int {
	return b.x.Fill(b.x.GetDescs(b.x.NumFreeFillSlots()))
}

// Receive takes up to len(out) received frames.
func (b *Baseline) Receive(out []Desc) int {
	got := b.x.Receive(len(out))
	for i, d := range got {
		out[i] = Desc{Addr: d.Addr, Len: d.Len}
	}
	return len(got)
}

// Release does nothing: the library already marked the frame free when it
// was received.
func (b *Baseline) Release(uint64) {}

// AllocN puts up to len(out) free frame addresses in out. The library does
// not mark them used until they are transmitted, so two calls before a
// Transmit return the same frames.
func (b *Baseline) AllocN(out []uint64) int {
	ds := b.x.GetDescs(len(out))
	for i, d := range ds {
		out[i] = d.Addr
	}
	return len(ds)
}

// Transmit queues descs and makes a sendto, as the library always does.
func (b *Baseline) Transmit(descs []Desc) int {
	buf := b.txBuf[:0]
	for _, d := range descs {
		if len(buf) == cap(buf) {
			break
		}
		buf = append(buf, xdp.Desc{Addr: d.Addr, Len: d.Len})
	}
	return b.x.Transmit(buf)
}

// Kick makes another sendto while frames are in flight, the library's
// only way to push out what one kick could not send (the kernel sends 32
// frames per kick in copy mode).
func (b *Baseline) Kick() error {
	if b.x.NumTransmitted() > 0 {
		b.x.Transmit(nil)
	}
	return nil
}

// Complete reaps the completion ring.
func (b *Baseline) Complete() int {
	n := b.x.NumCompleted()
	if n > 0 {
		b.x.Complete(n)
	}
	return n
}

// Close closes the socket and unmaps its UMEM.
func (b *Baseline) Close() error { return b.x.Close() }
