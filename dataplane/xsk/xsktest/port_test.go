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

// TestDeliverBatchIsDeliver delivers the same frames through Deliver on
// one port and DeliverBatch on another and requires the same descriptors
// and bytes received; then a descriptor fill moved or made too long, a
// full port and a closed one must stop DeliverBatch early with a counted
// drop and leave every chunk it did not queue free.
func TestDeliverBatchIsDeliver(t *testing.T) {
	frames := [][]byte{[]byte("one"), make([]byte, 60), []byte("three!")}
	a, b := New(4, 2048), New(4, 2048)
	for _, f := range frames {
		a.Deliver(f)
	}
	if n := b.DeliverBatch(len(frames), func(umem []byte, ds []xsk.Desc) {
		for i := range ds {
			ds[i].Len = uint32(copy(umem[ds[i].Addr:ds[i].Addr+uint64(ds[i].Len)], frames[i]))
		}
	}); n != len(frames) {
		t.Fatalf("DeliverBatch queued %d of %d", n, len(frames))
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
	if n := b.DeliverBatch(3, func(_ []byte, ds []xsk.Desc) {
		for i := range ds {
			ds[i].Len = 1
		}
		ds[1].Addr += 2048 // another chunk
	}); n != 1 || b.Dropped() != 1 || b.Free() != 3 {
		t.Fatalf("a descriptor moved: queued %d, dropped %d, free %d; want 1, 1 and 3", n, b.Dropped(), b.Free())
	}
	if n := b.DeliverBatch(2, func(_ []byte, ds []xsk.Desc) {
		ds[0].Len = 1
		ds[1].Len++ // past its room
	}); n != 1 || b.Dropped() != 2 || b.Free() != 2 {
		t.Fatalf("a length past the room: queued %d, dropped %d, free %d; want 1, 2 and 2", n, b.Dropped(), b.Free())
	}
	if n := b.DeliverBatch(5, func(_ []byte, ds []xsk.Desc) {
		if len(ds) != 2 {
			t.Errorf("fill got %d descriptors with 2 chunks free", len(ds))
		}
		for i := range ds {
			ds[i].Len = 1
		}
	}); n != 2 || b.Dropped() != 3 || b.Free() != 0 || b.Pending() != 4 {
		t.Fatalf("two chunks free: queued %d, dropped %d, free %d, pending %d; want 2, 3, 0 and 4", n, b.Dropped(), b.Free(), b.Pending())
	}
	nb = b.Receive(db[:])
	for _, d := range db[:nb] {
		b.Release(d.Addr)
	}
	b.Close()
	if n := b.DeliverBatch(1, func([]byte, []xsk.Desc) { t.Error("fill called on a closed port") }); n != 0 || b.Dropped() != 4 || b.Free() != 4 {
		t.Fatalf("closed port: queued %d, dropped %d, free %d; want 0, 4 and 4", n, b.Dropped(), b.Free())
	}
}

// TestTransmitAndReleaseCatchMisuse hands Transmit and Release frames the
// user does not own, and descriptors outside the UMEM or past their
// chunk: each must be reported, take nothing and move no chunk.
func TestTransmitAndReleaseCatchMisuse(t *testing.T) {
	p := New(4, 2048)
	var misuse []string
	p.Misuse = func(m string) { misuse = append(misuse, m) }
	a, _ := p.Alloc()
	p.Release(a)
	for _, c := range []struct {
		name string
		call func()
		want string
	}{
		{"transmit a free frame", func() {
			if n := p.Transmit([]xsk.Desc{{Addr: a + Headroom, Len: 60}}); n != 0 {
				t.Errorf("Transmit took %d frames", n)
			}
		}, "is free, not with the user"},
		{"release a free frame", func() { p.Release(a) }, "is free, not with the user"},
		{"transmit past the UMEM", func() {
			if n := p.Transmit([]xsk.Desc{{Addr: 4 * 2048, Len: 60}}); n != 0 {
				t.Errorf("Transmit took %d frames", n)
			}
		}, "runs past its chunk"},
		{"transmit past the chunk", func() {
			if n := p.Transmit([]xsk.Desc{{Addr: a + 2000, Len: 60}}); n != 0 {
				t.Errorf("Transmit took %d frames", n)
			}
		}, "runs past its chunk"},
		{"release past the UMEM", func() { p.Release(1 << 40) }, "outside the 8192-byte UMEM"},
	} {
		misuse = misuse[:0]
		c.call()
		if len(misuse) != 1 || !strings.Contains(misuse[0], c.want) {
			t.Errorf("%s: misuse %q, want one containing %q", c.name, misuse, c.want)
		}
		if p.Free() != 4 || p.InFlight() != 0 {
			t.Errorf("%s: %d free, %d in flight; want 4 and 0", c.name, p.Free(), p.InFlight())
		}
	}
}

// TestMisuseNamesWhereTheFrameIs hands Transmit and Release a frame from
// each of the port's own lists (received, on the TX ring, sent, free),
// and a descriptor twice in one Transmit: each report must name the list
// the frame is on, and nothing may move.
func TestMisuseNamesWhereTheFrameIs(t *testing.T) {
	p := New(8, 2048)
	var misuse []string
	p.Misuse = func(m string) { misuse = append(misuse, m) }
	for range 4 {
		p.Deliver([]byte("frame"))
	}
	var ds [4]xsk.Desc
	if n := p.Receive(ds[:3]); n != 3 {
		t.Fatalf("received %d frames, want 3", n)
	}
	// ds[0] goes out and is sent, ds[1] waits on the TX ring, ds[2] stays
	// with the user, the fourth frame waits for Receive.
	if p.Transmit(ds[:1]) != 1 || p.Kick() != nil || p.Transmit(ds[1:2]) != 1 {
		t.Fatal("transmitting the frames the user owns failed")
	}
	received := xsk.Desc{Addr: 3*2048 + Headroom, Len: 5}
	for _, c := range []struct {
		name string
		call func()
		want string
	}{
		{"transmit a sent frame", func() { p.Transmit(ds[:1]) }, "is sent, not with the user (moving it to the TX ring)"},
		{"release a frame on the TX ring", func() { p.Release(ds[1].Addr) }, "is on the TX ring, not with the user (moving it to free)"},
		{"transmit a received frame", func() { p.Transmit([]xsk.Desc{received}) }, "is received, not with the user"},
		{"release a free frame", func() { p.Release(7 * 2048) }, "is free, not with the user"},
		{"transmit one frame twice", func() {
			if n := p.Transmit([]xsk.Desc{ds[2], ds[2]}); n != 1 {
				t.Errorf("Transmit took %d of the two, want the first", n)
			}
		}, "is on the TX ring, not with the user"},
	} {
		misuse = misuse[:0]
		c.call()
		if len(misuse) != 1 || !strings.Contains(misuse[0], c.want) {
			t.Errorf("%s: misuse %q, want one containing %q", c.name, misuse, c.want)
		}
	}
	if p.Pending() != 1 || p.InFlight() != 3 || p.Free() != 4 || p.Transmitted() != 3 {
		t.Fatalf("pending %d, in flight %d, free %d, transmitted %d; want 1, 3, 4 and 3", p.Pending(), p.InFlight(), p.Free(), p.Transmitted())
	}
}
