package xsktest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

func TestPortMovesFramesAndCatchesMisuse(t *testing.T) {
	p := New(4, 2048)
	var misuse []string
	p.Misuse = func(m string) { misuse = append(misuse, m) }
	var wired [][]byte
	p.Wire = func(f []byte) { wired = append(wired, append([]byte(nil), f...)) }
	if !p.Deliver([]byte("hello")) {
		t.Fatal("Deliver refused with every chunk free")
	}
	var ds [4]xsk.Desc
	if n := p.Receive(ds[:]); n != 1 || ds[0].Addr%2048 != Headroom || string(p.Frame(ds[0])) != "hello" {
		t.Fatalf("Receive = %d, %+v", n, ds[0])
	}
	if n := p.Transmit(ds[:1]); n != 1 {
		t.Fatalf("Transmit = %d", n)
	}
	p.Release(ds[0].Addr) // on the TX ring: not the user's to release
	if len(misuse) != 1 || !strings.Contains(misuse[0], "on the TX ring, not with the user") {
		t.Fatalf("misuse %q, want one release of a transmitted frame", misuse)
	}
	if len(wired) != 0 {
		t.Fatal("a frame left before Kick")
	}
	p.Kick()
	if len(wired) != 1 || !bytes.Equal(wired[0], []byte("hello")) {
		t.Fatalf("wire saw %q", wired)
	}
	if p.Free() != 3 || p.Complete() != 1 || p.Free() != 4 {
		t.Fatalf("free %d after Complete, want 4", p.Free())
	}
	// TxCap bounds the ring; the rest stays with the user.
	p.TxCap = 1
	a1, _ := p.Alloc()
	a2, _ := p.Alloc()
	if n := p.Transmit([]xsk.Desc{{Addr: a1, Len: 60}, {Addr: a2, Len: 60}}); n != 1 {
		t.Fatalf("Transmit with TxCap 1 took %d", n)
	}
	p.Release(a2)
	p.Kick()
	p.Complete()
	if p.Free() != 4 || len(misuse) != 1 {
		t.Fatalf("free %d, misuse %q", p.Free(), misuse)
	}
	for range 4 {
		p.Deliver([]byte{1})
	}
	if p.Deliver([]byte{2}) || p.Dropped() != 1 {
		t.Fatalf("Deliver with no free chunk: dropped %d, want 1", p.Dropped())
	}
}

// TestWaitWakesOnDelivery checks that a Wait blocked on an empty port
// returns when a frame arrives, also after earlier deliveries into a
// non-empty queue (which send no signal of their own) were received and a
// Wait took the signal left over from them.
func TestWaitWakesOnDelivery(t *testing.T) {
	p := New(8, 2048)
	var ds [8]xsk.Desc
	for round := range 3 {
		done := make(chan time.Duration, 1)
		go func() {
			s := time.Now()
			p.Wait(time.Minute)
			done <- time.Since(s)
		}()
		time.Sleep(10 * time.Millisecond)
		p.Deliver([]byte{1})
		p.Deliver([]byte{2}) // the queue is not empty: no second signal
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Wait did not return after a delivery", round)
		}
		if n := p.Receive(ds[:]); n != 2 {
			t.Fatalf("round %d: received %d frames, want 2", round, n)
		}
		for _, d := range ds[:2] {
			p.Release(d.Addr)
		}
		// A leftover signal may make this Wait return at once; it must
		// not be needed by the next round.
		p.Wait(time.Millisecond)
	}
}

// TestDeliverFuncIsDeliver delivers the same frames through Deliver on
// one port and DeliverFunc on another and requires the same descriptors
// and bytes received, then a refused length and a full port to stop
// DeliverFunc early with a counted drop.
func TestDeliverFuncIsDeliver(t *testing.T) {
	frames := [][]byte{[]byte("one"), make([]byte, 60), []byte("three!")}
	a, b := New(4, 2048), New(4, 2048)
	for _, f := range frames {
		a.Deliver(f)
	}
	if n := b.DeliverFunc(len(frames), func(i int, buf []byte) int { return copy(buf, frames[i]) }); n != len(frames) {
		t.Fatalf("DeliverFunc queued %d of %d", n, len(frames))
	}
	var da, db [4]xsk.Desc
	na, nb := a.Receive(da[:]), b.Receive(db[:])
	if na != nb || na != len(frames) {
		t.Fatalf("received %d and %d frames, want %d", na, nb, len(frames))
	}
	for i := range na {
		if da[i] != db[i] || !bytes.Equal(a.Frame(da[i]), b.Frame(db[i])) {
			t.Fatalf("frame %d: %+v %q against %+v %q", i, da[i], a.Frame(da[i]), db[i], b.Frame(db[i]))
		}
	}
	for _, d := range db[:nb] {
		b.Release(d.Addr)
	}
	if n := b.DeliverFunc(3, func(i int, buf []byte) int {
		if i == 1 {
			return len(buf) + 1
		}
		return 1
	}); n != 1 || b.Dropped() != 1 {
		t.Fatalf("a length past the chunk: queued %d, dropped %d; want 1 and 1", n, b.Dropped())
	}
	if n := b.DeliverFunc(5, func(int, []byte) int { return 1 }); n != 3 || b.Dropped() != 2 {
		t.Fatalf("three chunks free: queued %d, dropped %d; want 3 and 2", n, b.Dropped())
	}
}
