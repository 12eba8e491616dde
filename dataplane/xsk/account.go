package xsk

import (
	"fmt"
	"sync/atomic"
)

// Account says where every UMEM frame is, counted two independent ways: by
// the Socket's own place of each chunk, and by the free list and the four
// rings' shared indices. It is a debugging aid for tests and for a worker's
// self-check; it walks every chunk, so keep it off the hot path.
type Account struct {
	// By place.
	Free, Fill, Caller, Tx int
	// By data structure. FillRing and RxRing together hold the Fill
	// frames except those the kernel is copying into right now; TxRing
	// and CompletionRing hold the Tx frames except those being sent.
	FreeList, FillRing, RxRing, TxRing, CompletionRing int
}

// Account counts the frames. Call it from the owner goroutine.
func (s *Socket) Account() Account {
	var a Account
	for _, p := range s.frames.place {
		switch p {
		case placeFree:
			a.Free++
		case placeFill:
			a.Fill++
		case placeCaller:
			a.Caller++
		case placeTx:
			a.Tx++
		}
	}
	a.FreeList = len(s.frames.free)
	if s.fill.mem != nil {
		a.FillRing = int(s.fill.outstanding())
	}
	if s.rx.mem != nil {
		// Frames the kernel produced that we have not consumed.
		a.RxRing = int(atomic.LoadUint32(s.rx.producer) - s.rx.cachedCons)
	}
	if s.tx.mem != nil {
		a.TxRing = int(s.tx.outstanding())
	}
	if s.comp.mem != nil {
		a.CompletionRing = int(atomic.LoadUint32(s.comp.producer) - s.comp.cachedCons)
	}
	return a
}

// Check reports the first broken rule for a socket whose kernel side is
// idle (no frame being received or sent): every frame is in exactly one
// place, and each place agrees with the rings that hold it.
func (a Account) Check(numFrames int) error {
	if sum := a.Free + a.Fill + a.Caller + a.Tx; sum != numFrames {
		return fmt.Errorf("frames by place %d (free %d, fill %d, caller %d, tx %d): must equal frame count %d",
			sum, a.Free, a.Fill, a.Caller, a.Tx, numFrames)
	}
	if a.FreeList != a.Free {
		return fmt.Errorf("free list length %d: must equal frames marked free %d", a.FreeList, a.Free)
	}
	if a.FillRing+a.RxRing != a.Fill {
		return fmt.Errorf("fill ring %d + rx ring %d: must equal frames given to the kernel for rx %d", a.FillRing, a.RxRing, a.Fill)
	}
	if a.TxRing+a.CompletionRing != a.Tx {
		return fmt.Errorf("tx ring %d + completion ring %d: must equal frames given to the kernel for tx %d", a.TxRing, a.CompletionRing, a.Tx)
	}
	return nil
}
