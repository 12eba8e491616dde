package xsk

import (
	"fmt"
	"os"
)

// Options sizes the UMEM and the four rings of a Socket.
//
// Ring sizes must be powers of two because the kernel indexes rings with a
// free-running 32-bit counter masked by size-1. A zero RxSize makes a
// TX-only socket; a zero TxSize makes an RX-only socket; not both.
type Options struct {
	// NumFrames is the number of UMEM chunks; each chunk holds one frame.
	NumFrames int
	// FrameSize is the chunk size: a power of two from 2048 to the page
	// size, as aligned-chunk UMEM mode requires.
	FrameSize int
	// FillSize, CompletionSize, RxSize and TxSize are ring sizes in
	// descriptors.
	FillSize, CompletionSize, RxSize, TxSize int
	// Copy forces XDP_COPY; ZeroCopy forces XDP_ZEROCOPY and fails on a
	// device that cannot do it. With neither the kernel picks zero-copy
	// when the driver supports it and copy otherwise.
	Copy, ZeroCopy bool
	// TxBudget raises how many frames the kernel sends per kick in copy
	// mode (XDP_MAX_TX_SKB_BUDGET; the kernel default is 32). Zero keeps
	// the kernel default. A kernel without the option ignores it and
	// Socket.TxBudget reports 0.
	TxBudget int
}

// DefaultOptions returns 4096 frames of 2048 bytes and rings of 2048
// descriptors: enough for the fill ring and the RX ring to be full at the
// same time while the worker still holds a batch.
func DefaultOptions() Options {
	return Options{
		NumFrames:      4096,
		FrameSize:      2048,
		FillSize:       2048,
		CompletionSize: 2048,
		RxSize:         2048,
		TxSize:         2048,
	}
}

// maxFrames bounds the UMEM so that a typo cannot ask for terabytes; 1<<20
// chunks of 4 KiB are 4 GiB.
const maxFrames = 1 << 20

// maxRing is the largest ring the kernel accepts (xskq_create limits the
// entry count so the ring fits in a 32-bit index space with room to spare).
const maxRing = 1 << 24

// Validate reports the first option that breaks a rule, naming it.
func (o Options) Validate() error {
	page := os.Getpagesize()
	if o.FrameSize < 2048 || o.FrameSize > page || !isPow2(o.FrameSize) {
		return fmt.Errorf("frame size %d: must be a power of two from 2048 to the page size %d", o.FrameSize, page)
	}
	if o.NumFrames <= 0 || o.NumFrames > maxFrames {
		return fmt.Errorf("frame count %d: must be from 1 to %d", o.NumFrames, maxFrames)
	}
	if o.RxSize == 0 && o.TxSize == 0 {
		return fmt.Errorf("rx size 0 and tx size 0: at least one ring is needed")
	}
	rings := []struct {
		name     string
		n        int
		optional bool
	}{
		{"fill size", o.FillSize, false},
		{"completion size", o.CompletionSize, false},
		{"rx size", o.RxSize, true},
		{"tx size", o.TxSize, true},
	}
	for _, r := range rings {
		if r.optional && r.n == 0 {
			continue
		}
		if r.n <= 0 || r.n > maxRing || !isPow2(r.n) {
			return fmt.Errorf("%s %d: must be a power of two from 1 to %d", r.name, r.n, maxRing)
		}
	}
	if o.Copy && o.ZeroCopy {
		return fmt.Errorf("copy and zero-copy both set: choose at most one")
	}
	if o.TxBudget < 0 || o.TxBudget > o.TxSize {
		return fmt.Errorf("tx budget %d: must be from 0 to the tx size %d", o.TxBudget, o.TxSize)
	}
	return nil
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }
