package dataplane

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// fakePort is an in-memory AF_XDP socket: frames move between a free list,
// a pending-RX queue, the worker, and a TX log, and every move is checked,
// so a worker that reused an in-flight frame fails the test.
type fakePort struct {
	t      testing.TB
	umem   []byte
	fs     int
	free   []uint64
	rx     []xsk.Desc
	txRing []xsk.Desc
	owner  map[uint64]string // chunk -> where it is
	txCap  int
	sent   []xsk.Desc // completed transmissions, when recording
	record bool
}

func newFakePort(t testing.TB, frames int) *fakePort {
	p := &fakePort{t: t, fs: 2048, umem: make([]byte, frames*2048), owner: map[uint64]string{}, txCap: 1 << 30}
	for i := 0; i < frames; i++ {
		a := uint64(i * 2048)
		p.free = append(p.free, a)
		p.owner[a] = "free"
	}
	return p
}

func (p *fakePort) chunk(a uint64) uint64 { return a &^ uint64(p.fs-1) }

func (p *fakePort) move(a uint64, from, to string) {
	c := p.chunk(a)
	if p.owner[c] != from {
		p.t.Fatalf("frame %#x is %q, not %q (moving to %q)", c, p.owner[c], from, to)
	}
	p.owner[c] = to
}

// inject queues frame as received, with 256 bytes of headroom.
func (p *fakePort) inject(frame []byte) bool {
	if len(p.free) == 0 {
		return false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.move(a, "free", "rx")
	copy(p.umem[a+256:], frame)
	p.rx = append(p.rx, xsk.Desc{Addr: a + 256, Len: uint32(len(frame))})
	return true
}

func (p *fakePort) Fill() int { return 0 }
func (p *fakePort) Receive(out []xsk.Desc) int {
	n := copy(out, p.rx)
	for _, d := range out[:n] {
		p.move(d.Addr, "rx", "worker")
	}
	// Shift rather than reslice, so the queue keeps its capacity and
	// the fake itself allocates nothing in the steady state.
	m := copy(p.rx, p.rx[n:])
	p.rx = p.rx[:m]
	return n
}
func (p *fakePort) Release(a uint64) {
	p.move(a, "worker", "free")
	p.free = append(p.free, p.chunk(a))
}
func (p *fakePort) Alloc() (uint64, bool) {
	if len(p.free) == 0 {
		return 0, false
	}
	a := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.move(a, "free", "worker")
	return a, true
}
func (p *fakePort) Transmit(ds []xsk.Desc) int {
	n := 0
	for _, d := range ds {
		if len(p.txRing) >= p.txCap {
			break
		}
		p.move(d.Addr, "worker", "tx")
		p.txRing = append(p.txRing, d)
		n++
	}
	return n
}
func (p *fakePort) Kick() error { return nil }
func (p *fakePort) Complete() int {
	n := len(p.txRing)
	if p.record {
		p.sent = append(p.sent, p.txRing...)
	}
	for _, d := range p.txRing {
		p.move(d.Addr, "tx", "free")
		p.free = append(p.free, p.chunk(d.Addr))
	}
	p.txRing = p.txRing[:0]
	return n
}
func (p *fakePort) Wait(time.Duration) error { return nil }
func (p *fakePort) UMEM() []byte             { return p.umem }
func (p *fakePort) FrameSize() int           { return p.fs }
func (p *fakePort) Headroom() int            { return 256 }

func newTestWorker(t testing.TB, fwd vs.Fwd, ports int) (*Worker, []*fakePort, *rig) {
	r := newRig(t, oneService(fwd, "rr", 1, 1), 1<<16)
	var ps []*fakePort
	tx := make([]TxPort, ports)
	for i := range tx {
		p := newFakePort(t, 256)
		ps = append(ps, p)
		tx[i] = TxPort{Port: p}
	}
	var snap atomic.Pointer[Snapshot]
	snap.Store(r.snap)
	w := NewWorker(0, -1, ps[0], 0, tx, &snap, r.p, r.c, nil)
	return w, ps, r
}

func TestWorkerForwardsAndAccountsFrames(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Tunnel, 1)
	p := ps[0]
	p.record = true
	for i := 0; i < 100; i++ {
		p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
	}
	p.inject([]byte{1, 2, 3}) // a runt: dropped and its frame freed
	for w.Poll() > 0 {
	}
	p.Complete()
	if got := len(p.sent); got != 100 {
		t.Fatalf("%d frames sent, want 100", got)
	}
	for _, d := range p.sent {
		if d.Addr%2048 != 256-20 {
			t.Fatalf("tunnelled frame at chunk offset %d, want %d (in place, headroom used)", d.Addr%2048, 256-20)
		}
	}
	if r.c.TX.Load() != 100 || r.c.RX.Load() != 101 {
		t.Fatalf("rx %d tx %d", r.c.RX.Load(), r.c.TX.Load())
	}
	if len(p.free) != 256 {
		t.Fatalf("%d of 256 frames back on the free list", len(p.free))
	}
}

func TestWorkerTxRingFullIsCounted(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	p := ps[0]
	p.txCap = 10
	for i := 0; i < 30; i++ {
		p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
	}
	w.Poll()
	if got := r.c.Drops[DropTxRingFull].Load(); got != 20 {
		t.Fatalf("tx_ring_full = %d, want 20", got)
	}
	p.Complete()
	if len(p.free) != 256 {
		t.Fatalf("%d of 256 frames free: a frame that could not be sent was lost", len(p.free))
	}
}

func TestWorkerCopiesToAnotherInterface(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 2)
	// Route everything to slot 1 as if the real server were behind eth1.
	s := *r.snap
	s.Services = append([]Service(nil), r.snap.Services...)
	s.Services[0].Dests = append([]Dest(nil), s.Services[0].Dests...)
	for i := range s.Services[0].Dests {
		s.Services[0].Dests[i].Slot = 1
	}
	s.Ifaces = append(s.Ifaces, Iface{Slot: 1, Index: 2, Name: "eth1", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500, Addr: [4]byte{198, 18, 1, 1}})
	w.snap.Store(&s)
	for i := 0; i < 40; i++ {
		ps[0].inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(2000+i), true, false, false, true, 0))
	}
	w.Poll()
	if len(ps[1].txRing) != 40 || len(ps[0].txRing) != 0 {
		t.Fatalf("eth1 sent %d, eth0 sent %d; want 40 and 0", len(ps[1].txRing), len(ps[0].txRing))
	}
	if len(ps[0].free) != 256 {
		t.Fatalf("ingress frames not all released after the copy: %d free", len(ps[0].free))
	}
	got := ps[1].umem[ps[1].txRing[0].Addr:]
	if [6]byte(got[6:12]) != [6]byte{2, 0, 0, 0, 1, 1} {
		t.Fatalf("copied frame's source MAC %x, want eth1's", got[6:12])
	}
}

func TestWorkerPollAllocs(t *testing.T) {
	w, ps, _ := newTestWorker(t, vs.Route, 1)
	p := ps[0]
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), i == 0, i != 0, false, true, 0)
	}
	// Establish the flows first.
	for i := range frames {
		p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), true, false, false, true, 0))
	}
	w.Poll()
	p.Complete()
	p.rx = make([]xsk.Desc, 0, 64)
	p.txRing = make([]xsk.Desc, 0, 64)
	free := make([]uint64, len(p.free), 512)
	copy(free, p.free)
	p.free = free
	// The fake's map and slices are set up; measure the worker alone.
	allocs := testing.AllocsPerRun(200, func() {
		for _, f := range frames {
			p.inject(f)
		}
		w.Poll()
		p.Complete()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 64 frames", allocs)
	}
}

func TestWorkerDropsBadDescriptors(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	p := ps[0]
	p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, 1000, true, false, false, true, 0))
	p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, 1001, true, false, false, true, 0))
	p.rx[0].Len = 4000 // runs past its 2048-byte chunk
	w.Poll()
	if got := r.c.Drops[DropBadDescriptor].Load(); got != 1 {
		t.Fatalf("bad_descriptor = %d, want 1", got)
	}
	if r.c.TX.Load() != 1 {
		t.Fatalf("the good frame was not forwarded: tx %d", r.c.TX.Load())
	}
	p.Complete()
	if len(p.free) != 256 {
		t.Fatalf("%d of 256 frames free", len(p.free))
	}
}

// TestWorkerSendsBothFragments sends oversized non-DF frames through a
// TUN service: each leaves as two tunnelled fragments, the second in a
// frame of its own, and every frame comes back to the free list.
func TestWorkerSendsBothFragments(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Tunnel, 1)
	p := ps[0]
	p.record = true
	for i := 0; i < 10; i++ {
		p.inject(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(4000+i), true, false, false, false, 1460))
	}
	for w.Poll() > 0 {
	}
	p.Complete()
	if got := len(p.sent); got != 20 || r.c.TX.Load() != 20 || r.c.Fragmented.Load() != 10 {
		t.Fatalf("sent %d frames (tx %d, fragmented %d), want 20 from 10 packets", got, r.c.TX.Load(), r.c.Fragmented.Load())
	}
	for i, d := range p.sent {
		f := p.umem[d.Addr : d.Addr+uint64(d.Len)]
		inner := header.IPv4(f[14+20:])
		if mf := inner.MF(); mf != (i%2 == 0) {
			t.Fatalf("frame %d: inner MF %v; want first fragment, then second, per packet", i, mf)
		}
		if len(f) > 14+1500 {
			t.Fatalf("frame %d is %d bytes, beyond the MTU", i, len(f))
		}
	}
	if len(p.free) != 256 {
		t.Fatalf("%d of 256 frames free after the fragments went out", len(p.free))
	}
}
