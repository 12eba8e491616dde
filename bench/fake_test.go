package bench

import (
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

// fakePort is an in-memory AF_XDP socket: a UMEM, a free list, an RX
// queue the test fills, and a TX ring that completes everything at the
// next Complete. It lets the generator's and the forwarder's per-batch
// paths run without root, and counts every frame it sees sent.
type fakePort struct {
	umem     []byte
	fs       int
	headroom int
	free     []uint64
	rxq      []xsk.Desc
	inFlight []uint64
	sent     [][]byte // copies of sent frames, when keep is set
	keep     bool
	nSent    int
	kicks    int
	txCap    int // frames Transmit takes per call; 0 = all
}

func newFakePort(frames, fs int) *fakePort {
	p := &fakePort{umem: make([]byte, frames*fs), fs: fs, headroom: 256}
	for i := frames - 1; i >= 0; i-- {
		p.free = append(p.free, uint64(i*fs))
	}
	p.inFlight = make([]uint64, 0, frames)
	return p
}

func (p *fakePort) Alloc() (uint64, bool) {
	if len(p.free) == 0 {
		return 0, false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return a, true
}

func (p *fakePort) Release(addr uint64) { p.free = append(p.free, addr&^uint64(p.fs-1)) }

func (p *fakePort) Transmit(ds []xsk.Desc) int {
	n := len(ds)
	if p.txCap > 0 {
		n = min(n, p.txCap)
	}
	for _, d := range ds[:n] {
		if p.keep {
			p.sent = append(p.sent, append([]byte(nil), p.umem[d.Addr:d.Addr+uint64(d.Len)]...))
		}
		p.inFlight = append(p.inFlight, d.Addr&^uint64(p.fs-1))
	}
	p.nSent += n
	return n
}

func (p *fakePort) Kick() error { p.kicks++; return nil }

func (p *fakePort) Complete() int {
	n := len(p.inFlight)
	p.free = append(p.free, p.inFlight...)
	p.inFlight = p.inFlight[:0]
	return n
}

func (p *fakePort) UMEM() []byte   { return p.umem }
func (p *fakePort) FrameSize() int { return p.fs }
func (p *fakePort) Headroom() int  { return p.headroom }

func (p *fakePort) Fill() int { return 0 }

func (p *fakePort) Receive(out []xsk.Desc) int {
	n := copy(out, p.rxq)
	// Shift rather than reslice, so the queue keeps its capacity and the
	// allocation tests see only the code under test.
	p.rxq = append(p.rxq[:0], p.rxq[n:]...)
	return n
}

func (p *fakePort) Wait(time.Duration) error { return nil }

// deliver puts frame into a fresh chunk at the headroom offset and queues
// it for Receive, as the kernel does.
func (p *fakePort) deliver(frame []byte) bool {
	a, ok := p.Alloc()
	if !ok {
		return false
	}
	off := a + uint64(p.headroom)
	copy(p.umem[off:], frame)
	p.rxq = append(p.rxq, xsk.Desc{Addr: off, Len: uint32(len(frame))})
	return true
}
