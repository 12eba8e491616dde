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
	// The template's timer ran out at 300 s while it controlled the
	// connection: it re-armed itself every 60 s (ip_vs_conn_expire), and
	// when the connection goes at 1314.062 s (1300 s and the slack) it
	// runs out at its next firing, 1320 s, not a full timeout after the
	// connection.
	clk.Advance(901*time.Second + slackOf(900*time.Second))
	if n := tbl.Sweep(tbl.Slots()); n != 1 {
		t.Fatalf("sweep expired %d, want the connection only", n)
	}
	clk.Set(1320*time.Second - time.Millisecond)
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("template gone before its 60 s re-arm ran out")
	}
	clk.Set(1320 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived its 60 s re-arm")
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
	if got := TemplateRef(tbl.conns.entry(uint32(c.ref>>32) - 1).bind.Load()); got != 0 {
		t.Fatalf("connection attached stale template %v", got)
	}
}

// TestSchedPersistRearmsTemplate follows ip_vs_sched_persist: a
// template's timer is re-armed to now plus its timeout only when a
// connection is created through it, and that timeout is the one it was
// made with. Finding it again (InsertTemplate answering Exists, another
// queue's choice) changes nothing, not even with another timeout (a later
// ipvsadm -E -p).
func TestSchedPersistRearmsTemplate(t *testing.T) {
	clk := &ManualClock{}
	to := DefaultTimeouts()
	to.UDP = time.Second
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 10, Clock: clk, Timeouts: to})
	tk := v4Key(ProtoUDP, 1, 0, 0) // port-0 service
	ref, _ := tbl.InsertTemplate(&tk, 1, 10*time.Second)
	clk.Advance(9 * time.Second)
	if r2, r := tbl.InsertTemplate(&tk, 1, 100*time.Second); r != Exists || r2 != ref {
		t.Fatalf("second insert = %v %v", r2, r)
	}
	clk.Advance(time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("InsertTemplate on an existing template re-armed or changed it")
	}
	ref, _ = tbl.InsertTemplate(&tk, 2, 10*time.Second)
	clk.Advance(5 * time.Second)
	k := v4Key(ProtoUDP, 1, 1000, 53)
	if _, r := tbl.Insert(&k, 2, 0, ref, EvNone); r != Inserted {
		t.Fatalf("insert = %v", r)
	}
	// Created at 10 s, re-armed at 15 s by the connection: it runs out at
	// 25 s. The connection (1 s) went at 16 s without touching it.
	clk.Set(25*time.Second - time.Millisecond)
	tbl.ExpireDue()
	if d, _, ok := tbl.LookupTemplate(&tk); !ok || d != 2 {
		t.Fatal("template re-armed by a new connection expired early")
	}
	clk.Set(25 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived its re-armed timer")
	}
	if st := tbl.Stats(); st.Templates != 1 || st.Entries != 0 {
		t.Fatalf("stats %v", st)
	}
}

// TestControlDelKeepsTemplateTimer follows ip_vs_control_del in
// ip_vs_conn_expire: a controlled connection that expires only drops the
// template's control count; the template's timer runs on from when the
// last connection was made through it.
func TestControlDelKeepsTemplateTimer(t *testing.T) {
	clk := &ManualClock{}
	to := DefaultTimeouts()
	to.UDP = 10 * time.Second
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 10, Clock: clk, Timeouts: to})
	tk := v4Key(ProtoUDP, 1, 0, 0)
	ref, _ := tbl.InsertTemplate(&tk, 1, 100*time.Second)
	k := v4Key(ProtoUDP, 1, 1000, 53)
	tbl.Insert(&k, 1, 0, ref, EvNone)
	clk.Set(50 * time.Second)
	if n := tbl.ExpireDue(); n != 1 {
		t.Fatalf("ExpireDue = %d, want the connection", n)
	}
	clk.Set(100*time.Second - time.Millisecond)
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("template gone early")
	}
	clk.Set(100 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("the controlled connection's expiry restarted the template's timer")
	}
}

// TestConnExpireRearmsTemplate60s follows ip_vs_conn_expire's
// expire_later: a template whose timer runs out while it controls
// connections is re-armed for 60 s, and 60 s is its timeout from then on,
// also for the re-arm of a later connection through it.
func TestConnExpireRearmsTemplate60s(t *testing.T) {
	clk := &ManualClock{}
	to := DefaultTimeouts()
	to.UDP = 1000 * time.Second
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 10, Clock: clk, Timeouts: to})
	tk := v4Key(ProtoUDP, 1, 0, 0)
	ref, _ := tbl.InsertTemplate(&tk, 1, 100*time.Second)
	k1 := v4Key(ProtoUDP, 1, 1000, 53)
	tbl.Insert(&k1, 1, 0, ref, EvNone) // conn until 1000 s, template armed to 100 s
	clk.Set(130 * time.Second)         // fired at 100 s, re-armed to 160 s with timeout 60 s
	_, ref2, ok := tbl.LookupTemplate(&tk)
	if !ok || ref2 != ref {
		t.Fatal("template controlling a connection is gone")
	}
	k2 := v4Key(ProtoUDP, 1, 1001, 53)
	tbl.Insert(&k2, 1, 0, ref, EvNone) // conn until 1130 s, template re-armed 130+60
	var left time.Duration
	tbl.Range(func(_ Key, _ Conn, l time.Duration, tmpl bool) bool {
		if tmpl {
			left = l
		}
		return true
	})
	if left != 60*time.Second {
		t.Fatalf("template timer after a new connection: %v left, want 60s (the re-armed timeout, not the 100 s it was made with)", left)
	}
	// Both connections go (1000 s, 1130 s); the timer kept firing every
	// 60 s from 190 s: 1090, 1150. It runs out at 1150 s.
	clk.Set(1150*time.Second - time.Millisecond)
	if n := tbl.ExpireDue(); n != 2 {
		t.Fatalf("ExpireDue = %d, want 2", n)
	}
	if _, _, ok := tbl.LookupTemplate(&tk); !ok {
		t.Fatal("template gone before its 60 s firing")
	}
	clk.Set(1150 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived its firing after its last connection")
	}
}

// TestTemplateTimerTieGoesToConnection: a template whose timer fires the
// same millisecond as its last connection's expires with it (the
// connection's timer is taken first).
func TestTemplateTimerTieGoesToConnection(t *testing.T) {
	clk := &ManualClock{}
	to := DefaultTimeouts()
	to.UDP = 100 * time.Second
	tbl := newTestTable(t, Config{Capacity: 10, Templates: 10, Clock: clk, Timeouts: to})
	tk := v4Key(ProtoUDP, 1, 0, 0)
	// The connection lives 100 s and its slack: the template's timeout
	// is that long, so that the two are due at the same millisecond.
	ref, _ := tbl.InsertTemplate(&tk, 1, lifetime(100*time.Second))
	k := v4Key(ProtoUDP, 1, 1000, 53)
	tbl.Insert(&k, 1, 0, ref, EvNone)
	clk.Set(lifetime(100 * time.Second))
	if n := tbl.ExpireDue(); n != 1 {
		t.Fatalf("ExpireDue = %d", n)
	}
	if _, _, ok := tbl.LookupTemplate(&tk); ok {
		t.Fatal("template outlived a timer that ran out with its last connection")
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
	// The connection ends: the zombie goes with it. (A SYN would not end
	// it: a controlled connection is never reopened.)
	tbl.Touch(&c, &k, EvRst)
	if !tbl.ExpireNow(&c) {
		t.Fatal("ExpireNow lost")
	}
	if st := tbl.Stats(); st.Templates != 2 {
		t.Fatalf("template freed before the connection was retired: %v", st)
	}
	tbl.Retire(&c)
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
