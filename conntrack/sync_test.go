package conntrack

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestSyncConnRules follows ip_vs_proc_conn: a new entry in the state
// and with the timeout sent; a refresh of the same flow to the same real
// server moves state and timer; an inactive copy naming another server
// is stale and ignored; an active one replaces the entry.
func TestSyncConnRules(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 64, Templates: 8, Clock: clk, Hooks: h})
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	k := v4Key(ProtoTCP, 1, 40000, 80)
	info := SyncInfo{Pkts: 3, OldState: uint8(Established), EndTime: 0}
	if r := tbl.SyncConn(&k, 5, 1, Established, 30*time.Second, false, info); r != SyncInserted {
		t.Fatalf("first: %v", r)
	}
	c, ok := tbl.Lookup(&k)
	if !ok || c.Dest != 5 || c.State != Established || c.Fwd != 1 || c.Controlled() {
		t.Fatalf("installed %+v %v", c, ok)
	}
	if got, _, _ := tbl.SyncInfo(&c); got != info {
		t.Errorf("sync word %+v, want %+v", got, info)
	}
	if h.active[5].Load() != 1 || h.inactive[5].Load() != 0 {
		t.Errorf("dest 5 active/inactive %d/%d, want 1/0", h.active[5].Load(), h.inactive[5].Load())
	}
	// The timeout sent, not the state's 900 s: gone after 30 s.
	clk.Advance(29 * time.Second)
	if _, ok := tbl.Lookup(&k); !ok {
		t.Fatal("expired before its synced timeout")
	}
	// A refresh: FIN_WAIT with 120 s from now; the count moves to
	// inactive.
	if r := tbl.SyncConn(&k, 5, 1, FinWait, 120*time.Second, true, info); r != SyncUpdated {
		t.Fatalf("refresh: %v", r)
	}
	clk.Advance(100 * time.Second)
	if c, ok := tbl.Lookup(&k); !ok || c.State != FinWait {
		t.Fatalf("after refresh: %+v %v", c, ok)
	}
	if h.active[5].Load() != 0 || h.inactive[5].Load() != 1 {
		t.Errorf("after refresh dest 5 active/inactive %d/%d, want 0/1", h.active[5].Load(), h.inactive[5].Load())
	}
	// Another server, inactive: the message is about the connection this
	// entry replaced.
	if r := tbl.SyncConn(&k, 6, 1, Close, 10*time.Second, true, info); r != SyncStale {
		t.Fatalf("stale: %v", r)
	}
	if c, _ := tbl.Lookup(&k); c.Dest != 5 {
		t.Fatalf("a stale message moved the entry to %d", c.Dest)
	}
	// Another server, active: the master moved the flow; replace.
	if r := tbl.SyncConn(&k, 6, 1, Established, 900*time.Second, false, info); r != SyncInserted {
		t.Fatalf("replace: %v", r)
	}
	if c, _ := tbl.Lookup(&k); c.Dest != 6 || c.State != Established {
		t.Fatalf("replaced entry %+v", c)
	}
	checkCounts(t, tbl, h)
	if r := tbl.SyncConn(&k, 6, 1, Established, 0, false, info); r != SyncInvalid {
		t.Errorf("zero timeout: %v", r)
	}
	// Workers forward a synced entry like any other: Touch hits.
	c, _ = tbl.Lookup(&k)
	if r := tbl.Touch(&c, &k, EvAck); r != Hit {
		t.Errorf("Touch on a synced entry: %v", r)
	}
}

// TestSyncTemplate: a synced template is found by its key with its real
// server; a refresh keeps the server and sets the timer and the timeout.
func TestSyncTemplate(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 64, Templates: 8, Clock: clk})
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	k := v4Key(ProtoTCP, 7, 0, 80)
	r0, r := tbl.SyncTemplate(&k, 3, 300*time.Second, SyncInfo{Pkts: 3})
	if r != SyncInserted {
		t.Fatalf("first: %v", r)
	}
	// ip_vs_proc_conn sets in_pkts to sync_threshold, templates too.
	if info, _, _ := tbl.TemplateSyncInfo(r0); info != (SyncInfo{Pkts: 3}) {
		t.Errorf("template sync word %+v, want 3 packets", info)
	}
	d, ref, ok := tbl.LookupTemplate(&k)
	if !ok || d != 3 {
		t.Fatalf("template dest %d %v", d, ok)
	}
	if kk, dest, to, ok := tbl.TemplateInfo(ref); !ok || kk != k || dest != 3 || to != 300*time.Second {
		t.Errorf("TemplateInfo %v %d %v %v", kk, dest, to, ok)
	}
	clk.Advance(250 * time.Second)
	if _, r := tbl.SyncTemplate(&k, 4, 100*time.Second, SyncInfo{Pkts: 3}); r != SyncUpdated {
		t.Fatalf("refresh: %v", r)
	}
	clk.Advance(90 * time.Second) // 340 s: past the first timeout, within the refresh
	d, ref, ok = tbl.LookupTemplate(&k)
	if !ok || d != 3 {
		t.Fatalf("after refresh: dest %d %v (the server must stay 3)", d, ok)
	}
	if _, _, to, _ := tbl.TemplateInfo(ref); to != 100*time.Second {
		t.Errorf("refreshed timeout %v, want 100s", to)
	}
	clk.Advance(11 * time.Second)
	if _, _, ok := tbl.LookupTemplate(&k); ok {
		t.Error("template outlived its synced timeout")
	}
}

// TestSyncWords: a new entry's word starts at zero packets with its
// creation time, rounded down to 4 ms, as the end time; SetSyncInfo is a
// compare-and-swap; templates have their own words.
func TestSyncWords(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 64, Templates: 8, Clock: clk})
	k := v4Key(ProtoTCP, 2, 1000, 80)
	c0, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	if _, _, ok := tbl.SyncInfo(&c0); ok {
		t.Fatal("sync words before EnableSync")
	}
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	if err := tbl.EnableSync(); err != nil { // idempotent
		t.Fatal(err)
	}
	clk.Advance(1007 * time.Millisecond)
	k2 := v4Key(ProtoTCP, 3, 1000, 80)
	c, _ := tbl.Insert(&k2, 1, 0, 0, EvSyn)
	info, raw, ok := tbl.SyncInfo(&c)
	if !ok || info != (SyncInfo{EndTime: 1004}) {
		t.Fatalf("new entry's word %+v %v", info, ok)
	}
	next := SyncInfo{Pkts: MaxSyncPkts, OldState: uint8(SynAck), EndTime: 1<<36 - 4}
	if !tbl.SetSyncInfo(&c, raw, next) || tbl.SetSyncInfo(&c, raw, SyncInfo{}) {
		t.Fatal("SetSyncInfo is not a compare-and-swap")
	}
	if got, _, _ := tbl.SyncInfo(&c); got != next {
		t.Errorf("word %+v, want %+v", got, next)
	}
	tk := v4Key(ProtoTCP, 4, 0, 80)
	ref, _ := tbl.InsertTemplate(&tk, 1, time.Minute)
	ti, traw, ok := tbl.TemplateSyncInfo(ref)
	if !ok || ti != (SyncInfo{EndTime: 1004}) {
		t.Fatalf("template word %+v %v", ti, ok)
	}
	if !tbl.SetTemplateSyncInfo(ref, traw, SyncInfo{Pkts: 1}) {
		t.Fatal("SetTemplateSyncInfo failed")
	}
	if got, _, _ := tbl.SyncInfo(&c); got != next {
		t.Error("a template's word is the connection's")
	}
}

// TestSyncCount: SyncCounter.Count adds one packet when the count
// reached cannot be due and leaves the word alone (reporting false) when
// it may be, when a TCP connection's state is neither ESTABLISHED nor the
// one last sent, past MaxSyncPkts (the full decision restarts the
// count), and for a counter taken before EnableSync.
func TestSyncCount(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 64, Clock: clk})
	k := v4Key(ProtoTCP, 2, 1000, 80)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	before := tbl.SyncCounter(NewSyncRule(50, 3))
	if before.Count(&c, ProtoTCP) {
		t.Fatal("counted before EnableSync")
	}
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	if before.Count(&c, ProtoTCP) {
		t.Fatal("a counter taken before EnableSync counted")
	}
	_, raw, _ := tbl.SyncInfo(&c)
	if !tbl.SetSyncInfo(&c, raw, SyncInfo{Pkts: 1, OldState: uint8(Established), EndTime: 400}) {
		t.Fatal("SetSyncInfo")
	}
	c.State = Established
	want := SyncInfo{Pkts: 2, OldState: uint8(Established), EndTime: 400}
	count := tbl.SyncCounter(NewSyncRule(50, 3))
	if !count.Count(&c, ProtoTCP) {
		t.Fatal("count 2 of period 50, threshold 3: not counted")
	}
	if got, _, _ := tbl.SyncInfo(&c); got != want {
		t.Fatalf("word %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name        string
		period, due uint32
		st          State
		proto       uint8
	}{
		{"due at 3", 50, 3, Established, ProtoTCP},
		{"due at 3 modulo 1", 1, 0, Established, ProtoTCP},
		{"period 0, due at 3", 0, 3, Established, ProtoTCP},
		{"state changed", 50, 7, FinWait, ProtoTCP},
	} {
		cc := c
		cc.State = tc.st
		count := tbl.SyncCounter(NewSyncRule(tc.period, tc.due))
		if count.Count(&cc, tc.proto) {
			t.Errorf("%s: counted", tc.name)
		}
		if got, _, _ := tbl.SyncInfo(&c); got != want {
			t.Fatalf("%s: word %+v, want it unchanged (%+v)", tc.name, got, want)
		}
	}
	// The zero rule rules nothing out.
	if zero := tbl.SyncCounter(SyncRule{}); zero.Count(&c, ProtoTCP) {
		t.Error("the zero rule counted")
	}
	// A state other than the one last sent is watched for TCP only, and
	// ESTABLISHED is never forced.
	cc := c
	cc.State = FinWait
	if count := tbl.SyncCounter(NewSyncRule(0, 5)); !count.Count(&cc, ProtoUDP) {
		t.Fatal("count 3, period 0, due at 5, not TCP: not counted")
	}
	_, raw, _ = tbl.SyncInfo(&c)
	if !tbl.SetSyncInfo(&c, raw, SyncInfo{Pkts: 3, OldState: uint8(SynRecv)}) {
		t.Fatal("SetSyncInfo")
	}
	if count := tbl.SyncCounter(NewSyncRule(0, 5)); !count.Count(&c, ProtoTCP) {
		t.Fatal("ESTABLISHED after SYN_RECV, count 4 of due 5: not counted")
	}
	if got, _, _ := tbl.SyncInfo(&c); got != (SyncInfo{Pkts: 4, OldState: uint8(SynRecv)}) {
		t.Fatalf("word %+v after counting", got)
	}
	// Past the top the full decision restarts the count.
	_, raw, _ = tbl.SyncInfo(&c)
	if !tbl.SetSyncInfo(&c, raw, SyncInfo{Pkts: MaxSyncPkts}) {
		t.Fatal("SetSyncInfo")
	}
	if count := tbl.SyncCounter(NewSyncRule(7, 3)); count.Count(&c, ProtoTCP) {
		t.Fatal("counted past MaxSyncPkts")
	}
	if got, _, _ := tbl.SyncInfo(&c); got.Pkts != MaxSyncPkts {
		t.Fatalf("count past the top %d, want it left at %d", got.Pkts, MaxSyncPkts)
	}
	// A connection that has gone names no word.
	c0 := Conn{}
	if count.Count(&c0, ProtoTCP) {
		t.Fatal("counted for no entry")
	}
}

// TestSyncCounterInfoSet: a counter reads and replaces a connection's
// word as SyncInfo does, and touches nothing when it counts nothing or
// the connection names no entry.
func TestSyncCounterInfoSet(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 64, Templates: 8, Clock: clk})
	k := v4Key(ProtoTCP, 2, 1000, 80)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	none := tbl.SyncCounter(NewSyncRule(50, 3))
	if _, ok := none.Info(&c); ok {
		t.Fatal("a counter before EnableSync read a word")
	}
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	none.Set(&c, SyncInfo{Pkts: 9}) // counts nothing: no word to write
	count := tbl.SyncCounter(NewSyncRule(50, 3))
	if got, ok := count.Info(&c); !ok || got != (SyncInfo{}) {
		t.Fatalf("word %+v %v, want the zero word", got, ok)
	}
	want := SyncInfo{Pkts: MaxSyncPkts, OldState: uint8(FinWait), EndTime: 1<<36 - 4}
	count.Set(&c, want)
	if got, ok := count.Info(&c); !ok || got != want {
		t.Fatalf("Info after Set: %+v %v, want %+v", got, ok, want)
	}
	if got, _, _ := tbl.SyncInfo(&c); got != want {
		t.Fatalf("SyncInfo after Set: %+v, want %+v", got, want)
	}
	k2 := v4Key(ProtoTCP, 3, 1000, 80)
	c2, _ := tbl.Insert(&k2, 1, 0, 0, EvSyn)
	if got, _ := count.Info(&c2); got != (SyncInfo{}) {
		t.Fatalf("another entry's word %+v: Set wrote beside its own", got)
	}
	c0 := Conn{}
	count.Set(&c0, SyncInfo{Pkts: 1})
	if _, ok := count.Info(&c0); ok {
		t.Fatal("read a word for no entry")
	}
	if got, _ := count.Info(&c); got != want {
		t.Fatalf("word %+v after a Set for no entry", got)
	}
}

// TestSyncRule: up to MaxSyncPkts, the counts Count tests, the
// multiplication test says yes at every count the
// kernel's test (count modulo period equal to the threshold, or count
// equal to it with period 0) does; at counts from the threshold on it
// says yes at those alone, so the common packet is only counted; and
// with a threshold the count modulo period never reaches it never says
// yes.
func TestSyncRule(t *testing.T) {
	counts := func(yield func(uint32) bool) {
		for n := range uint32(4000) {
			if !yield(n) {
				return
			}
		}
		for n := uint32(MaxSyncPkts - 4000); n <= MaxSyncPkts; n++ {
			if !yield(n) {
				return
			}
		}
	}
	for _, period := range []uint32{0, 1, 2, 3, 4, 5, 7, 8, 16, 49, 50, 64, 100, 127, 1000, 1 << 20, MaxSyncPkts, 1<<32 - 1} {
		for _, due := range []uint32{0, 1, 2, 3, 6, 7, 9, 48, 49, 50, 51, 99, 1000, 1 << 20, MaxSyncPkts, 1<<32 - 1} {
			r := NewSyncRule(period, due)
			for n := range counts {
				kernel := period > 0 && n%period == due || period == 0 && n == due
				got := r.mayBeDue(n)
				if kernel && !got {
					t.Fatalf("period %d due %d count %d: the kernel syncs, the rule rules it out", period, due, n)
				}
				if got && !kernel && (n >= due || period > 0 && due >= period) {
					t.Fatalf("period %d due %d count %d: the rule asks for the full decision the kernel never takes", period, due, n)
				}
			}
		}
	}
}

// TestSyncConnConcurrent installs synced entries while workers insert,
// touch and look up the same flows: afterwards every key has one entry
// and the hooks' counts match the table. Run it with -race.
func TestSyncConnConcurrent(t *testing.T) {
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 4096, Templates: 64, Hooks: h})
	if err := tbl.EnableSync(); err != nil {
		t.Fatal(err)
	}
	const keys = 200
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 5000 {
				k := v4Key(ProtoTCP, uint32(r.IntN(keys)), 2000, 80)
				dest := uint32(1 + r.IntN(3))
				if g%2 == 0 {
					st := []State{Established, FinWait, Close, SynRecv}[r.IntN(4)]
					tbl.SyncConn(&k, dest, 0, st, time.Minute, !st.Active(), SyncInfo{Pkts: 3})
					continue
				}
				c, ok := tbl.Lookup(&k)
				if !ok {
					c, _ = tbl.Insert(&k, dest, 0, 0, EvSyn)
				}
				if tbl.Touch(&c, &k, []Event{EvAck, EvFin, EvSyn}[r.IntN(3)]) == Reopen {
					tbl.Retire(&c) // as the dataplane does after scheduling afresh
				}
			}
		}()
	}
	wg.Wait()
	seen := map[Key]int{}
	tbl.Range(func(k Key, _ Conn, _ time.Duration, tmpl bool) bool {
		if !tmpl {
			seen[k]++
		}
		return true
	})
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%v: %d entries", k, n)
		}
	}
	checkCounts(t, tbl, h)
}

// TestSyncConnNATReply: a VS/NAT connection SyncConn makes is marked for
// its reply key to be filed (ReplyPending) when the table has a reverse
// index, until ReplyFiled; other methods, updates of entries made here,
// and tables without the index are not marked.
func TestSyncConnNATReply(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 64, Reverse: 64, Clock: &ManualClock{}})
	nat, dr, local := v4Key(ProtoTCP, 2, 1000, 80), v4Key(ProtoTCP, 3, 1000, 80), v4Key(ProtoTCP, 4, 1000, 80)
	tbl.SyncConn(&nat, 1, FwdMasq, Established, time.Minute, false, SyncInfo{})
	tbl.SyncConn(&dr, 1, 0, Established, time.Minute, false, SyncInfo{})
	c, _ := tbl.Lookup(&nat)
	if !c.ReplyPending() {
		t.Fatal("a synced NAT connection is not marked")
	}
	if c2, _ := tbl.Lookup(&dr); c2.ReplyPending() {
		t.Fatal("a synced DR connection is marked")
	}
	// A refresh keeps the mark; ReplyFiled clears it for good.
	tbl.SyncConn(&nat, 1, FwdMasq, Established, time.Minute, false, SyncInfo{})
	if c, _ = tbl.Lookup(&nat); !c.ReplyPending() {
		t.Fatal("a refresh cleared the mark")
	}
	tbl.ReplyFiled(&c)
	if c.ReplyPending() {
		t.Fatal("ReplyFiled left the caller's copy marked")
	}
	if c, _ = tbl.Lookup(&nat); c.ReplyPending() || c.Fwd != FwdMasq {
		t.Fatalf("after ReplyFiled: pending %v, fwd %d", c.ReplyPending(), c.Fwd)
	}
	tbl.SyncConn(&nat, 1, FwdMasq, Established, time.Minute, false, SyncInfo{})
	if c, _ = tbl.Lookup(&nat); c.ReplyPending() {
		t.Fatal("a refresh marked a filed connection again")
	}
	// A connection made here files its own reply key: never marked.
	lc, _ := tbl.Insert(&local, 1, FwdMasq, 0, EvSyn)
	if lc.ReplyPending() {
		t.Fatal("a local NAT connection is marked")
	}
	// Without the index nothing is marked.
	plain := newTestTable(t, Config{Capacity: 64, Clock: &ManualClock{}})
	plain.SyncConn(&nat, 1, FwdMasq, Established, time.Minute, false, SyncInfo{})
	if c, _ := plain.Lookup(&nat); c.ReplyPending() {
		t.Fatal("marked in a table without a reverse index")
	}
	// A stale copy of a gone connection clears nothing.
	tbl.ReplyFiled(&Conn{})
}
