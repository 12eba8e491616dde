package xsk

import "sync/atomic"

// Counters are the owner-side events of one Socket since Open.
type Counters struct {
	// RX is frames taken from the RX ring by Receive.
	RX uint64
	// TX is frames queued to the TX ring by Transmit.
	TX uint64
	// Completed is frames the kernel finished sending, reaped by Complete.
	Completed uint64
	// Filled is frames moved into the fill ring.
	Filled uint64
	// FillEmpty counts Fill calls that found room in the fill ring but no
	// free frame to put there: the worker holds or sends too many.
	FillEmpty uint64
	// TxFull counts Transmit calls that could not queue every frame
	// because the TX ring was full.
	TxFull uint64
	// TxInvalid counts descriptors Transmit refused: a frame the caller
	// does not own, or one that does not fit in its chunk.
	TxInvalid uint64
	// AllocEmpty counts Alloc calls that found no free frame.
	AllocEmpty uint64
	// BadRelease counts Release calls for a frame the caller does not
	// own (a double release, or an address outside the UMEM); they are
	// ignored so that a frame can never enter the free list twice.
	BadRelease uint64
	// Kicks is sendto calls made to start or continue transmission.
	Kicks uint64
	// KickErrors counts Kick calls where the kernel took no frame at all
	// (EAGAIN, ENOBUFS or EBUSY without progress): the device queue or
	// the completion ring is full. The frames stay queued.
	KickErrors uint64
	// RxWakeups counts recvfrom calls an empty Receive made: because the
	// fill ring asked for a wakeup (drivers in need_wakeup mode), or to
	// busy-poll the device (SetBusyPoll).
	RxWakeups uint64
	// RxBatches counts Receive calls that returned frames: RX over
	// RxBatches is the mean batch the owner took from the RX ring.
	RxBatches uint64
}

// counters is the live form of Counters. Only the owner goroutine writes,
// once per call that changed something, with an atomic store of load+n:
// there is a single writer, so no read-modify-write instruction is needed,
// and the store makes the value safe for any goroutine to read through
// Socket.Counters at any time.
type counters struct {
	rx, tx, completed, filled    atomic.Uint64
	fillEmpty, txFull, txInvalid atomic.Uint64
	allocEmpty, badRelease       atomic.Uint64
	kicks, kickErrors, rxWakeups atomic.Uint64
	rxBatches                    atomic.Uint64
}

func add(c *atomic.Uint64, n uint64) { c.Store(c.Load() + n) }

func (c *counters) snapshot() Counters {
	return Counters{
		RX:         c.rx.Load(),
		TX:         c.tx.Load(),
		Completed:  c.completed.Load(),
		Filled:     c.filled.Load(),
		FillEmpty:  c.fillEmpty.Load(),
		TxFull:     c.txFull.Load(),
		TxInvalid:  c.txInvalid.Load(),
		AllocEmpty: c.allocEmpty.Load(),
		BadRelease: c.badRelease.Load(),
		Kicks:      c.kicks.Load(),
		KickErrors: c.kickErrors.Load(),
		RxWakeups:  c.rxWakeups.Load(),
		RxBatches:  c.rxBatches.Load(),
	}
}
