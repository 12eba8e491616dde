package xsktest

import (
	"bytes"
	"strings"
	"testing"

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
