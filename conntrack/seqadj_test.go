package conntrack

import "testing"

// TestSeqState: a connection's sequence state reads back as set, pending
// and then established; a later connection in the same slot sees none
// of it; a table without a reverse index keeps none.
func TestSeqState(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 16, Reverse: 16, Clock: clk})
	k := v4Key(ProtoTCP, 1, 1000, 80)
	c, _ := tbl.Insert(&k, 1, FwdMasq, 0, EvSyn)
	if _, ok := tbl.SeqOf(&c); ok {
		t.Fatal("a new connection has sequence state")
	}
	p := Seq{Pending: true, Window: 29200, Cookie: 0xdeadbeef, ClientISN: 0xfffffff0}
	if !tbl.SetSeq(&c, p) {
		t.Fatal("SetSeq refused")
	}
	if got, ok := tbl.SeqOf(&c); !ok || got != p {
		t.Fatalf("pending: %+v %v, want %+v", got, ok, p)
	}
	e := Seq{Delta: 0x80000001}
	tbl.SetSeq(&c, e)
	if got, ok := tbl.SeqOf(&c); !ok || got != e {
		t.Fatalf("established: %+v %v, want %+v", got, ok, e)
	}
	if !tbl.ExpireNow(&c) {
		t.Fatal("ExpireNow")
	}
	tbl.Retire(&c)
	c2, _ := tbl.Insert(&k, 1, FwdMasq, 0, EvSyn)
	if c2.ID() == c.ID() {
		t.Fatal("a new lifetime has the old ID")
	}
	if _, ok := tbl.SeqOf(&c2); ok {
		t.Fatal("a later connection reads the earlier one's sequence state")
	}
	plain := newTestTable(t, Config{Capacity: 16, Clock: clk})
	c3, _ := plain.Insert(&k, 1, FwdMasq, 0, EvSyn)
	if plain.SetSeq(&c3, p) {
		t.Fatal("a table without a reverse index took sequence state")
	}
}
