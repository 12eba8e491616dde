package director

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// TestWorkerTXCountsContinueTotals: a worker publishes C.TX and C.TXBytes
// from totals of its own, so a worker made on counters that already hold
// counts must carry on from them, on its own socket and across to another
// interface's, and a Poll leaves the batch mark even (Quiet returns at
// once).
func TestWorkerTXCountsContinueTotals(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1, 1), 1<<12)
	in, out := newFakePort(t, 256), newFakePort(t, 256)
	in.Record, out.Record = true, true
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	const frames0, bytes0 = 1000, 64000
	r.c.TX.Store(frames0)
	r.c.TXBytes.Store(bytes0)
	w := NewWorker(0, -1, in, 0, []TxPort{{Port: in}, {Port: out}}, &snap, r.p, r.c, nil)
	var sent uint64
	poll := func(k int, port uint16) {
		t.Helper()
		for i := range k {
			in.Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, port+uint16(i), true, false, false, true, 0))
		}
		if n := w.Poll(); n != k {
			t.Fatalf("polled %d frames, want %d", n, k)
		}
		if v := w.polls.Load(); v%2 != 0 {
			t.Fatalf("batch mark %d is odd after Poll", v)
		}
		done := make(chan struct{})
		go func() { w.Quiet(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Quiet did not return after Poll")
		}
		in.Complete()
		out.Complete()
	}
	poll(7, 1000) // out of the receiving socket
	snap.Store(routeTo(r, 1))
	poll(5, 2000) // copied to the other interface's socket
	for _, p := range []*xsktest.Port{in, out} {
		for _, s := range p.Recorded() {
			sent += uint64(s.Desc.Len)
		}
	}
	if got, want := len(in.Recorded())+len(out.Recorded()), 12; got != want {
		t.Fatalf("%d frames sent, want %d", got, want)
	}
	if got := r.c.TX.Load(); got != frames0+12 {
		t.Fatalf("tx = %d, want %d", got, frames0+12)
	}
	if got := r.c.TXBytes.Load(); got != bytes0+sent {
		t.Fatalf("tx bytes = %d, want %d", got, bytes0+sent)
	}
}
