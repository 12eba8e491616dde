package conntrack

import (
	"testing"
	"time"
)

func TestTemplateLifecycle(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 100, Templates: 10, Clock: clk, Hooks: h})
	// -p 300 -M 255.255.255.0: the template key has the masked client
	// address and CPort 0.
	tk := v4Key(ProtoTCP, 0x0100, 0, 443)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template found in empty table")
	}
	ref, r := tbl.InsertTemplate(&tk, 5, 300*time.Second)
	if r != Inserted || ref == 0 {
		t.Fatalf("InsertTemplate = %v %v", ref, r)
	}
	dest, got, ok := tbl.LookupTemplate(&tk)
	if !ok || dest != 5 || got != ref {
		t.Fatalf("LookupTemplate = %d %v %v", dest, got, ok)
	}
	// Another queue choosing a different server finds the first choice.
	other, r := tbl.InsertTemplate(&tk, 6, 300*time.Second)
	if r != Exists || other != ref {
		t.Fatalf("racing InsertTemplate = %v %v, want %v exists", other, r, ref)
	}
	if d, ok := tbl.Template(other); !ok || d != 5 {
		t.Fatalf("Template(ref) = %d %v, want 5", d, ok)
	}
	if st := tbl.Stats(); st.Templates != 1 {
		t.Fatalf("stats %v", st)
	}

	// A connection under the template keeps it past its own timeout.
	k := v4Key(ProtoTCP, 0x0107, 5555, 443)
	c, r := tbl.Insert(&k, dest, 0, ref, EvSyn)
	if r != Inserted {
		t.Fatalf("Insert = %v", r)
	}
	tbl.Touch(&c, &k, EvAck)
	clk.Advance(400 * time.Second)
	tbl.Touch(&c, &k, EvAck)
	tbl.Sweep(tbl.Slots())
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("template expired while controlling a live connection")
	}
	// When the connection goes, the template lives one more timeout.
	clk.Advance(901 * time.Second)
	if n := tbl.Sweep(tbl.Slots()); n != 1 {
		t.Fatalf("sweep expired %d, want the connection only", n)
	}
	clk.Advance(299 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("template gone before its timeout after the last connection")
	}
	clk.Advance(time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived its timeout")
	}
	if n := tbl.Sweep(tbl.Slots()); n != 1 {
		t.Fatalf("sweep expired %d, want the template", n)
	}
	if st := tbl.Stats(); st.Templates != 0 || st.Entries != 0 {
		t.Fatalf("stats %v", st)
	}
	if _, ok := tbl.Template(ref); ok {
		t.Fatal("Template(stale ref) ok")
	}
	// A stale ref no longer attaches.
	c, _ = tbl.Insert(&k, 5, 0, ref, EvSyn)
	if got := TemplateRef(tbl.conns.entries[uint32(c.ref>>32)-1].bind.Load()); got != 0 {
		t.Fatalf("connection attached stale template %v", got)
	}
}

func TestTemplateRefresh(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 10, Clock: clk})
	tk := v4Key(ProtoUDP, 1, 0, 0) // port-0 service
	ref, _ := tbl.InsertTemplate(&tk, 1, 10*time.Second)
	clk.Advance(9 * time.Second)
	if r2, r := tbl.InsertTemplate(&tk, 1, 10*time.Second); r != Exists || r2 != ref {
		t.Fatalf("refresh = %v %v", r2, r)
	}
	clk.Advance(9 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("refreshed template expired")
	}
	clk.Advance(time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived its refreshed timeout")
	}
	// An expired template is replaced, possibly by another server.
	ref2, r := tbl.InsertTemplate(&tk, 2, 10*time.Second)
	if r != Inserted || ref2 == ref {
		t.Fatalf("insert over expired = %v %v", ref2, r)
	}
	if d, _, _ := tbl.LookupTemplate(&tk); d != 2 {
		t.Fatalf("dest %d, want 2", d)
	}
	if st := tbl.Stats(); st.Templates != 1 {
		t.Fatalf("stats %v", st)
	}
}

// TestTemplateDelete is the quiesced or removed real server: the template
// stops matching at once, its connections keep it until they end.
func TestTemplateDelete(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 4, Clock: clk})
	tk := v4Key(ProtoTCP, 1, 0, 80)
	ref, _ := tbl.InsertTemplate(&tk, 1, time.Minute)
	k := v4Key(ProtoTCP, 1, 1234, 80)
	c, _ := tbl.Insert(&k, 1, 0, ref, EvAck)
	tbl.DeleteTemplate(ref)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("deleted template still matches")
	}
	if d, ok := tbl.Template(ref); !ok || d != 1 {
		t.Fatal("deleted template in use vanished")
	}
	// A new template for the same key goes to the new choice while the
	// old one still holds its connection.
	ref2, r := tbl.InsertTemplate(&tk, 2, time.Minute)
	if r != Inserted || ref2 == ref {
		t.Fatalf("reinsert after delete = %v %v", ref2, r)
	}
	if st := tbl.Stats(); st.Templates != 2 {
		t.Fatalf("stats %v", st)
	}
	// A stale delete does nothing to the new template.
	tbl.DeleteTemplate(ref)
	if d, _, ok := tbl.LookupTemplate(&tk); !ok || d != 2 {
		t.Fatal("second delete of an old ref hit the new template")
	}
	// The connection ends: the zombie goes with it.
	tbl.Touch(&c, &k, EvRst)
	if r := tbl.Touch(&c, &k, EvSyn); r != Reopen {
		t.Fatalf("reopen = %v", r)
	}
	if st := tbl.Stats(); st.Templates != 1 {
		t.Fatalf("zombie template not freed: %v", st)
	}
	// Deleting an unused template frees it at once.
	tbl.DeleteTemplate(ref2)
	if st := tbl.Stats(); st.Templates != 0 {
		t.Fatalf("unused template not freed: %v", st)
	}
	for _, bad := range []TemplateRef{0, 1 << 23, 0xffffffff} {
		tbl.DeleteTemplate(bad)
		if _, ok := tbl.Template(bad); ok {
			t.Fatalf("Template(%#x) ok", bad)
		}
	}
}

func TestTemplateLimits(t *testing.T) {
	clk := &ManualClock{}
	none := newTestTable(t, Config{Capacity: 10, Clock: clk})
	tk := v4Key(ProtoTCP, 1, 0, 80)
	if _, r := none.InsertTemplate(&tk, 1, time.Minute); r != Full {
		t.Fatalf("InsertTemplate without template space = %v, want full", r)
	}
	if _, _, ok := none.LookupTemplate(&tk); ok {
		t.Fatal("lookup without template space hit")
	}
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 2, Clock: clk})
	for _, d := range []time.Duration{0, -time.Second, MaxTimeout + time.Millisecond} {
		if _, r := tbl.InsertTemplate(&tk, 1, d); r != Invalid {
			t.Fatalf("timeout %v = %v, want invalid", d, r)
		}
	}
	for i := range uint32(2) {
		k := v4Key(ProtoTCP, i, 0, 80)
		if _, r := tbl.InsertTemplate(&k, 1, time.Minute); r != Inserted {
			t.Fatalf("template %d = %v", i, r)
		}
	}
	k3 := v4Key(ProtoTCP, 3, 0, 80)
	if _, r := tbl.InsertTemplate(&k3, 1, time.Minute); r != Full {
		t.Fatalf("third template = %v, want full (live templates are not evicted)", r)
	}
	clk.Advance(time.Minute)
	if _, r := tbl.InsertTemplate(&k3, 1, time.Minute); r != Inserted {
		t.Fatalf("after expiry = %v, want an expired template reused", r)
	}
	// One expired template was reused; the other waits for Sweep.
	if st := tbl.Stats(); st.Templates != 2 {
		t.Fatalf("stats %v", st)
	}
	if n := tbl.Sweep(tbl.Slots()); n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	if st := tbl.Stats(); st.Templates != 1 {
		t.Fatalf("stats %v", st)
	}
}
