package director

import (
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// newFakePort is an in-memory socket of frames 2048-byte chunks whose
// contract violations fail t.
func newFakePort(t testing.TB, frames int) *xsktest.Port {
	p := xsktest.New(frames, 2048)
	p.Misuse = func(msg string) { t.Error(msg) }
	return p
}

func newTestWorker(t testing.TB, fwd vs.Fwd, ports int) (*Worker, []*xsktest.Port, *rig) {
	r := newRig(t, oneService(fwd, "rr", 1, 1), 1<<16)
	var ps []*xsktest.Port
	tx := make([]TxPort, ports)
	for i := range tx {
		p := newFakePort(t, 256)
		ps = append(ps, p)
		tx[i] = TxPort{Port: p}
	}
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	w := NewWorker(0, -1, ps[0], 0, tx, &snap, r.p, r.c, nil)
	return w, ps, r
}

func TestWorkerForwardsAndAccountsFrames(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Tunnel, 1)
	p := ps[0]
	p.Record = true
	for i := 0; i < 100; i++ {
		p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
	}
	p.Deliver([]byte{1, 2, 3}) // a runt: dropped and its frame freed
	for w.Poll() > 0 {
	}
	p.Complete()
	if got := len(p.Recorded()); got != 100 {
		t.Fatalf("%d frames sent, want 100", got)
	}
	for _, s := range p.Recorded() {
		if d := s.Desc; d.Addr%2048 != 256-20 {
			t.Fatalf("tunnelled frame at chunk offset %d, want %d (in place, headroom used)", d.Addr%2048, 256-20)
		}
	}
	if r.c.TX.Load() != 100 || r.c.RX.Load() != 101 {
		t.Fatalf("rx %d tx %d", r.c.RX.Load(), r.c.TX.Load())
	}
	if p.Free() != 256 {
		t.Fatalf("%d of 256 frames back on the free list", p.Free())
	}
}

func TestWorkerTxRingFullIsCounted(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	p := ps[0]
	p.TxCap = 10
	for i := 0; i < 30; i++ {
		p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
	}
	w.Poll()
	if got := r.c.Drops[dataplane.DropTxRingFull].Load(); got != 20 {
		t.Fatalf("tx_ring_full = %d, want 20", got)
	}
	p.Complete()
	if p.Free() != 256 {
		t.Fatalf("%d of 256 frames free: a frame that could not be sent was lost", p.Free())
	}
}

// routeToSlot1 puts every real server of the worker's service behind a
// second interface, eth1 (slot 1).
func routeToSlot1(w *Worker, r *rig) {
	s := *r.snap
	s.Services = append([]dataplane.Service(nil), r.snap.Services...)
	s.Services[0].Dests = append([]dataplane.Dest(nil), s.Services[0].Dests...)
	for i := range s.Services[0].Dests {
		s.Services[0].Dests[i].Slot = 1
	}
	s.Ifaces = append(s.Ifaces, dataplane.Iface{Slot: 1, Index: 2, Name: "eth1", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500, Addr: [4]byte{198, 18, 1, 1}})
	w.snap.Store(&s)
}

func TestWorkerCopiesToAnotherInterface(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 2)
	routeToSlot1(w, r)
	for i := 0; i < 40; i++ {
		ps[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(2000+i), true, false, false, true, 0))
	}
	ps[1].Record = true
	w.Poll()
	if ps[1].InFlight() != 40 || ps[0].InFlight() != 0 {
		t.Fatalf("eth1 sent %d, eth0 sent %d; want 40 and 0", ps[1].InFlight(), ps[0].InFlight())
	}
	if ps[0].Free() != 256 {
		t.Fatalf("ingress frames not all released after the copy: %d free", ps[0].Free())
	}
	got := ps[1].Recorded()[0].Frame
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
		p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), true, false, false, true, 0))
	}
	w.Poll()
	p.Complete()
	// The fake's slices are sized for every chunk; measure the worker alone.
	allocs := testing.AllocsPerRun(200, func() {
		for _, f := range frames {
			p.Deliver(f)
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
	p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, 1000, true, false, false, true, 0))
	p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, 1001, true, false, false, true, 0))
	p.SetRXLen(0, 4000) // runs past its 2048-byte chunk
	w.Poll()
	if got := r.c.Drops[dataplane.DropBadDescriptor].Load(); got != 1 {
		t.Fatalf("bad_descriptor = %d, want 1", got)
	}
	if r.c.TX.Load() != 1 {
		t.Fatalf("the good frame was not forwarded: tx %d", r.c.TX.Load())
	}
	p.Complete()
	if p.Free() != 256 {
		t.Fatalf("%d of 256 frames free", p.Free())
	}
}

// TestWorkerSendsBothFragments sends oversized non-DF frames through a
// TUN service: each leaves as two tunnelled fragments, the second in a
// frame of its own, and every frame comes back to the free list.
func TestWorkerSendsBothFragments(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Tunnel, 1)
	p := ps[0]
	p.Record = true
	for i := 0; i < 10; i++ {
		p.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(4000+i), true, false, false, false, 1460))
	}
	for w.Poll() > 0 {
	}
	p.Complete()
	if got := len(p.Recorded()); got != 20 || r.c.TX.Load() != 20 || r.c.Fragmented.Load() != 10 {
		t.Fatalf("sent %d frames (tx %d, fragmented %d), want 20 from 10 packets", got, r.c.TX.Load(), r.c.Fragmented.Load())
	}
	for i, s := range p.Recorded() {
		f := s.Frame
		inner := header.IPv4(f[14+20:])
		if mf := inner.MF(); mf != (i%2 == 0) {
			t.Fatalf("frame %d: inner MF %v; want first fragment, then second, per packet", i, mf)
		}
		if len(f) > 14+1500 {
			t.Fatalf("frame %d is %d bytes, beyond the MTU", i, len(f))
		}
	}
	if p.Free() != 256 {
		t.Fatalf("%d of 256 frames free after the fragments went out", p.Free())
	}
}

// TestWorkerTakesNewTXTable: a TX table given with SetTX is used from the
// next batch: frames for a slot it adds go out there, frames for a slot
// it removes are dropped as no_egress, and once the table has grown the
// batches allocate nothing.
func TestWorkerTakesNewTXTable(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	s := *r.snap
	s.Services = append([]dataplane.Service(nil), r.snap.Services...)
	s.Services[0].Dests = append([]dataplane.Dest(nil), s.Services[0].Dests...)
	for i := range s.Services[0].Dests {
		s.Services[0].Dests[i].Slot = 1
	}
	s.Ifaces = append(s.Ifaces, dataplane.Iface{Slot: 1, Index: 2, Name: "eth1", MAC: [6]byte{2, 0, 0, 0, 1, 1}, MTU: 1500, Addr: [4]byte{198, 18, 1, 1}})
	w.snap.Store(&s)
	send := func(port uint16) {
		ps[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, port, true, false, false, true, 0))
		w.Poll()
	}
	send(5000)
	if got := r.c.Drops[dataplane.DropNoEgress].Load(); got != 1 {
		t.Fatalf("no_egress = %d before slot 1 has a port, want 1", got)
	}
	eth1 := newFakePort(t, 256)
	w.SetTX([]TxPort{{Port: ps[0]}, {Port: eth1}})
	w.Quiet()
	send(5001)
	if eth1.InFlight() != 1 {
		t.Fatalf("eth1 sent %d frames after SetTX, want 1", eth1.InFlight())
	}
	frame := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5001, false, true, false, true, 0)
	tx := r.c.TX.Load()
	if a := testing.AllocsPerRun(100, func() {
		ps[0].Deliver(frame)
		w.Poll()
		eth1.Complete()
	}); a != 0 {
		t.Errorf("%v allocations per batch with the grown table", a)
	}
	if r.c.TX.Load()-tx != 101 {
		t.Fatalf("%d of 101 frames of the established flow went out on eth1", r.c.TX.Load()-tx)
	}
	w.SetTX([]TxPort{{Port: ps[0]}, {}})
	send(5003)
	if got := r.c.Drops[dataplane.DropNoEgress].Load(); got != 2 {
		t.Fatalf("no_egress = %d after slot 1 lost its port, want 2", got)
	}
}
