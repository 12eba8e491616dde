package bench

import (
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

// txPort is the transmit half of an AF_XDP socket as the generator and the
// baseline forwarder use it. *xsk.Socket implements it; the unit tests use
// an in-memory fake so the per-batch paths can be checked without root.
type txPort interface {
	Alloc() (uint64, bool)
	Release(addr uint64)
	Transmit(descs []xsk.Desc) int
	Kick() error
	Complete() int
	UMEM() []byte
	FrameSize() int
	Headroom() int
}

// rxPort is the receive half the baseline forwarder uses.
type rxPort interface {
	Fill() int
	Receive(out []xsk.Desc) int
	Release(addr uint64)
	Wait(timeout time.Duration) error
	UMEM() []byte
	FrameSize() int
}
