package conntrack

import (
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	bad := DefaultTimeouts()
	bad.CloseWait = -time.Second
	huge := DefaultTimeouts()
	huge.UDP = MaxTimeout + time.Millisecond
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero capacity", Config{Capacity: 0}, "capacity = 0: must be between 1 and"},
		{"negative capacity", Config{Capacity: -5}, "capacity = -5"},
		{"capacity too big", Config{Capacity: MaxCapacity + 1}, "capacity = 1073741825"},
		{"negative templates", Config{Capacity: 10, Templates: -1}, "templates = -1: must be between 0 and"},
		{"templates too big", Config{Capacity: 10, Templates: MaxTemplates + 1}, "templates = 8388609"},
		{"negative timeout", Config{Capacity: 10, Timeouts: bad}, "timeouts.CloseWait = -1s: must be between 1ms and"},
		{"timeout too long", Config{Capacity: 10, Timeouts: huge}, "timeouts.UDP ="},
	}
	if ram := physicalMemory(); ram > 0 && ram < storeBytes(MaxCapacity, true) {
		tests = append(tests, struct {
			name string
			cfg  Config
			want string
		}{"more than the RAM", Config{Capacity: MaxCapacity}, "more than the machine's"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := New(tt.cfg)
			if err == nil || tbl != nil {
				t.Fatalf("New(%+v) = %v, %v; want error", tt.cfg, tbl, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	tbl := newTestTable(t, Config{Capacity: 1})
	if tcp, fin, udp := tbl.TimeoutsSet(); tcp != 900*time.Second || fin != 120*time.Second || udp != 300*time.Second {
		t.Fatalf("zero Timeouts did not default: %v %v %v", tcp, fin, udp)
	}
}

func TestInsertLookupTouch(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 100, Clock: clk, Hooks: h})
	k := v4Key(ProtoTCP, 1, 40000, 80)
	if _, ok := tbl.Lookup(&k); ok {
		t.Fatal("lookup in empty table hit")
	}
	// fwd 3 is input-only (FwdMasq, 2, would take the NAT tables).
	c, r := tbl.Insert(&k, 7, 3, 0, EvSyn)
	if r != Inserted || c.Dest != 7 || c.Fwd != 3 || c.State != SynRecv {
		t.Fatalf("Insert = %+v, %v; want dest 7 fwd 3 SYN_RECV inserted", c, r)
	}
	if h.active[7].Load() != 1 || h.inactive[7].Load() != 0 {
		t.Fatalf("after SYN: active %d inactive %d, want 1 0", h.active[7].Load(), h.inactive[7].Load())
	}
	// Another queue inserting the same flow gets the first one's entry.
	c2, r := tbl.Insert(&k, 9, 1, 0, EvSyn)
	if r != Exists || c2 != c {
		t.Fatalf("second Insert = %+v, %v; want %+v exists", c2, r, c)
	}
	got, ok := tbl.Lookup(&k)
	if !ok || got != c {
		t.Fatalf("Lookup = %+v, %v; want %+v", got, ok, c)
	}
	// Keys differing in any one field are different connections.
	for _, other := range []Key{
		v4Key(ProtoTCP, 2, 40000, 80), v4Key(ProtoTCP, 1, 40001, 80),
		v4Key(ProtoTCP, 1, 40000, 81), v4Key(ProtoUDP, 1, 40000, 80),
	} {
		if _, ok := tbl.Lookup(&other); ok {
			t.Fatalf("Lookup(%v) hit the entry of %v", other, k)
		}
	}
	steps := []struct {
		ev    Event
		state State
		res   Result
	}{
		{EvAck, Established, Hit},
		{EvAck, Established, Hit},
		{EvFin, FinWait, Hit},
		{EvAck, FinWait, Hit},
		{EvRst, Close, Hit},
	}
	for i, s := range steps {
		clk.Advance(time.Second)
		if r := tbl.Touch(&c, &k, s.ev); r != s.res || c.State != s.state {
			t.Fatalf("step %d: Touch(%d) = %v state %v; want %v %v", i, s.ev, r, c.State, s.res, s.state)
		}
	}
	if h.active[7].Load() != 0 || h.inactive[7].Load() != 1 {
		t.Fatalf("after close: active %d inactive %d, want 0 1", h.active[7].Load(), h.inactive[7].Load())
	}
	// A SYN on CLOSE is a new connection: the entry goes and the caller
	// schedules again.
	if r := tbl.Touch(&c, &k, EvSyn); r != Reopen {
		t.Fatalf("SYN on CLOSE = %v, want reopen", r)
	}
	if _, ok := tbl.Lookup(&k); ok {
		t.Fatal("reopened entry still found")
	}
	if r := tbl.Touch(&c, &k, EvAck); r != Gone {
		t.Fatalf("Touch on released entry = %v, want gone", r)
	}
	var zero Conn
	if r := tbl.Touch(&zero, &k, EvAck); r != Gone {
		t.Fatalf("Touch on zero Conn = %v, want gone", r)
	}
	forged := Conn{ref: 1 << 62}
	if r := tbl.Touch(&forged, &k, EvAck); r != Gone {
		t.Fatalf("Touch on forged Conn = %v, want gone", r)
	}
	// ip_vs_conn_expire_now: the old connection still counts while the
	// SYN that reopened it is scheduled, and leaves only at Retire.
	if h.inactive[7].Load() != 1 {
		t.Fatalf("inactive after reopen, before the new decision = %d, want 1", h.inactive[7].Load())
	}
	old := c
	c, r = tbl.Insert(&k, 8, 0, 0, EvSyn)
	if r != Inserted || c.Dest != 8 {
		t.Fatalf("reinsert = %+v %v", c, r)
	}
	tbl.Retire(&old)
	if h.inactive[7].Load() != 0 {
		t.Fatalf("inactive after Retire = %d", h.inactive[7].Load())
	}
	st := tbl.Stats()
	if st.Entries != 1 || st.Inserted != 2 || st.Reopened != 1 || st.Capacity != 100 {
		t.Fatalf("stats %v", st)
	}
	checkCounts(t, tbl, h)
}

func TestReopenOnTimeWait(t *testing.T) {
	tbl := newTestTable(t, Config{Capacity: 10, Clock: &ManualClock{}})
	k := v4Key(ProtoTCP, 3, 1000, 443)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	if tbl.Touch(&c, &k, EvFin); c.State != TimeWait {
		t.Fatalf("SYN_RECV + fin = %v, want TIME_WAIT", c.State)
	}
	if r := tbl.Touch(&c, &k, EvSyn); r != Reopen {
		t.Fatalf("SYN on TIME_WAIT = %v, want reopen", r)
	}
	// A SYN in any other state is not a reopen.
	c, _ = tbl.Insert(&k, 1, 0, 0, EvAck)
	if r := tbl.Touch(&c, &k, EvSyn); r != Hit || c.State != Established {
		t.Fatalf("SYN on ESTABLISHED = %v %v", r, c.State)
	}
}

func TestUDPIgnoresFlags(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
	k := v4Key(ProtoUDP, 3, 53, 53)
	c, r := tbl.Insert(&k, 1, 0, 0, EvNone)
	if r != Inserted || c.State != UDP {
		t.Fatalf("udp insert = %+v %v", c, r)
	}
	for _, ev := range []Event{EvSyn, EvFin, EvAck, EvRst, EvNone} {
		if r := tbl.Touch(&c, &k, ev); r != Hit || c.State != UDP {
			t.Fatalf("udp touch %d = %v %v", ev, r, c.State)
		}
	}
}

// TestTimeouts checks every state's timeout on the injected clock and the
// slack rule: an entry refreshed at T by a packet that writes it is
// listed with its timeout left, a packet within the slack after T writes
// nothing, and the entry is found at T+timeout+slack-1ms and gone at
// T+timeout+slack.
func TestTimeouts(t *testing.T) {
	def := DefaultTimeouts()
	want := def.byState()
	for s := range State(numStates) {
		t.Run(s.String(), func(t *testing.T) {
			clk := &ManualClock{}
			h := &countHooks{}
			tbl := newTestTable(t, Config{Capacity: 10, Clock: clk, Hooks: h})
			proto := uint8(ProtoTCP)
			if s == UDP {
				proto = ProtoUDP
			}
			k := v4Key(proto, 9, 999, 80)
			c, _ := tbl.Insert(&k, 3, 0, 0, EvNone)
			if s != UDP {
				forceState(t, tbl, &c, s)
			}
			// Half the timeout is more than the slack: the refresh
			// writes.
			clk.Advance(want[s] / 2)
			if r := tbl.Touch(&c, &k, EvNone); r != Hit || c.State != s {
				t.Fatalf("refresh = %v %v", r, c.State)
			}
			listed := func() (left time.Duration) {
				n := 0
				tbl.Range(func(_ Key, _ Conn, l time.Duration, _ bool) bool { n, left = n+1, l; return true })
				if n != 1 {
					t.Fatalf("Range listed %d entries", n)
				}
				return left
			}
			if l := listed(); l != want[s] {
				t.Fatalf("listed with %v left after a refresh, want %v", l, want[s])
			}
			stored := payload(tbl.conns.entry(uint32(c.ref>>32) - 1).meta.Load())
			if sl := slackOf(want[s]); sl > 0 {
				// Within the slack: nothing written, the listing counts
				// down from the refresh.
				clk.Advance(sl)
				if r := tbl.Touch(&c, &k, EvNone); r != Hit || c.State != s {
					t.Fatalf("touch within the slack = %v %v", r, c.State)
				}
				if m := tbl.conns.entry(uint32(c.ref>>32) - 1).meta.Load(); payload(m) != stored {
					t.Fatalf("touch within the slack moved the expiry from %d to %d", stored, payload(m))
				}
				if l := listed(); l != want[s]-sl {
					t.Fatalf("listed with %v left %v after the refresh, want %v", l, sl, want[s]-sl)
				}
				clk.Advance(-sl)
			}
			clk.Advance(lifetime(want[s]) - time.Millisecond)
			if _, ok := tbl.Lookup(&k); !ok {
				t.Fatalf("gone 1ms before its %v timeout plus slack", want[s])
			}
			if l := listed(); l != 0 && slackOf(want[s]) > 0 {
				t.Fatalf("listed with %v left within the slack, want 0", l)
			}
			if got := tbl.Sweep(tbl.Slots()); got != 0 {
				t.Fatalf("Sweep expired %d entries early", got)
			}
			clk.Advance(time.Millisecond)
			if _, ok := tbl.Lookup(&k); ok {
				t.Fatalf("found at its %v timeout plus slack", want[s])
			}
			tbl.Range(func(Key, Conn, time.Duration, bool) bool { t.Fatal("Range listed an expired entry"); return false })
			if r := tbl.Touch(&c, &k, EvAck); r != Gone {
				t.Fatalf("Touch after expiry = %v, want gone", r)
			}
			if h.active[3].Load()+h.inactive[3].Load() != 0 {
				t.Fatal("expired entry still counted")
			}
			if st := tbl.Stats(); st.Entries != 0 || st.Expired != 1 {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// TestTimeoutsByPackets walks the reachable states with real packets.
func TestTimeoutsByPackets(t *testing.T) {
	def := DefaultTimeouts()
	paths := []struct {
		evs   []Event
		state State
		want  time.Duration
	}{
		{[]Event{EvNone}, None, def.None},
		{[]Event{EvSyn}, SynRecv, def.SynRecv},
		{[]Event{EvSyn, EvAck}, Established, def.Established},
		{[]Event{EvSyn, EvAck, EvFin}, FinWait, def.FinWait},
		{[]Event{EvSyn, EvFin}, TimeWait, def.TimeWait},
		{[]Event{EvSyn, EvAck, EvRst}, Close, def.Close},
	}
	for _, p := range paths {
		t.Run(p.state.String(), func(t *testing.T) {
			clk := &ManualClock{}
			tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
			k := v4Key(ProtoTCP, 1, 2, 3)
			c, _ := tbl.Insert(&k, 1, 0, 0, p.evs[0])
			for _, ev := range p.evs[1:] {
				clk.Advance(time.Second)
				tbl.Touch(&c, &k, ev)
			}
			if c.State != p.state {
				t.Fatalf("state %v, want %v", c.State, p.state)
			}
			// Every packet changed the state, so each wrote: the entry
			// lives its timeout plus the slack after the last.
			clk.Advance(lifetime(p.want) - time.Millisecond)
			if _, ok := tbl.Lookup(&k); !ok {
				t.Fatal("expired early")
			}
			clk.Advance(time.Millisecond)
			if _, ok := tbl.Lookup(&k); ok {
				t.Fatal("alive at its timeout plus slack")
			}
		})
	}
}

func TestSetTimeouts(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
	tbl.SetTimeouts(30*time.Second, 0, -1)
	if tcp, fin, udp := tbl.TimeoutsSet(); tcp != 30*time.Second || fin != 120*time.Second || udp != 300*time.Second {
		t.Fatalf("after --set 30 0 -1: %v %v %v", tcp, fin, udp)
	}
	tbl.SetTimeouts(0, 5*time.Second, 7*time.Second)
	if tcp, fin, udp := tbl.TimeoutsSet(); tcp != 30*time.Second || fin != 5*time.Second || udp != 7*time.Second {
		t.Fatalf("after --set 0 5 7: %v %v %v", tcp, fin, udp)
	}
	tbl.SetTimeouts(MaxTimeout*2, 0, 0)
	if tcp, _, _ := tbl.TimeoutsSet(); tcp != MaxTimeout {
		t.Fatalf("over-long timeout not clamped: %v", tcp)
	}
	tbl.SetTimeouts(30*time.Second, 0, 0)
	k := v4Key(ProtoTCP, 1, 1, 1)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvAck)
	clk.Advance(30*time.Second - time.Millisecond)
	if _, ok := tbl.Lookup(&k); !ok {
		t.Fatal("established gone before the --set timeout")
	}
	tbl.Touch(&c, &k, EvFin)
	clk.Advance(lifetime(5 * time.Second))
	if _, ok := tbl.Lookup(&k); ok {
		t.Fatal("FIN_WAIT outlived the --set tcpfin timeout plus slack")
	}
	u := v4Key(ProtoUDP, 1, 1, 1)
	tbl.Insert(&u, 1, 0, 0, EvNone)
	clk.Advance(lifetime(7 * time.Second))
	if _, ok := tbl.Lookup(&u); ok {
		t.Fatal("UDP outlived the --set udp timeout plus slack")
	}
}

// TestSetTimeoutsNextPacket: a packet after ipvsadm --set changed its
// state's timeout moves the entry onto the new timeout at once, in either
// direction, although the stored expiry was refreshed within the slack,
// as IPVS's next packet re-arms the timer with the new cp->timeout.
func TestSetTimeoutsNextPacket(t *testing.T) {
	for _, to := range []time.Duration{30 * time.Second, 2000 * time.Second} {
		t.Run(to.String(), func(t *testing.T) {
			clk := &ManualClock{}
			tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
			k := v4Key(ProtoUDP, 1, 1, 1)
			c, _ := tbl.Insert(&k, 1, 0, 0, EvNone)
			clk.Advance(time.Second) // within the 300 s timeout's slack
			tbl.SetTimeouts(0, 0, to)
			if r := tbl.Touch(&c, &k, EvNone); r != Hit {
				t.Fatalf("touch = %v", r)
			}
			var left time.Duration
			tbl.Range(func(_ Key, _ Conn, l time.Duration, _ bool) bool { left = l; return true })
			if left != to {
				t.Fatalf("listed with %v left after the packet, want the new timeout %v", left, to)
			}
			clk.Advance(lifetime(to) - time.Millisecond)
			if _, ok := tbl.Lookup(&k); !ok {
				t.Fatal("gone before the new timeout plus slack")
			}
			clk.Advance(time.Millisecond)
			if _, ok := tbl.Lookup(&k); ok {
				t.Fatal("alive after the new timeout plus slack")
			}
		})
	}
}

// TestEvictionOrder fills a tiny table and checks the order: expired
// entries first, from either bucket, then the oldest SYN_RECV/inactive of
// the fuller bucket, never ESTABLISHED.
func TestEvictionOrder(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	to := DefaultTimeouts()
	to.Established = 5 * time.Second
	tbl := newTestTable(t, Config{Capacity: 3, Clock: clk, Hooks: h, Timeouts: to})
	if tbl.conns.nb != 2 {
		t.Fatalf("%d buckets, want 2: every key's two", tbl.conns.nb)
	}
	key := func(i uint32) Key { return v4Key(ProtoTCP, i, 1000, 80) }
	ins := func(i uint32, ev Event) (Conn, InsertResult) {
		k := key(i)
		clk.Advance(time.Millisecond)
		return tbl.Insert(&k, i, 0, 0, ev)
	}
	bucketOf := func(i uint32) uint32 { return bucketHolding(t, tbl, key(i)) }
	ins(1, EvAck) // ESTABLISHED, oldest of all
	ins(2, EvSyn) // SYN_RECV, oldest evictable, in the bucket 1 left empty
	// The third goes where the second is (a key whose first choice is that
	// bucket; the buckets are level), so that bucket is the fuller one.
	third := uint32(10) // clear of 1, 2, 4 and 5
	for ; ; third++ {
		k := key(third)
		w := k.words()
		if b1, _, _ := tbl.conns.place(tbl.seed.hash(&w)); b1 == bucketOf(2) {
			break
		}
	}
	ins(third, EvSyn)
	if bucketOf(1) == bucketOf(2) || bucketOf(third) != bucketOf(2) {
		t.Fatalf("buckets of 1, 2, 3: %d %d %d", bucketOf(1), bucketOf(2), bucketOf(third))
	}
	if _, r := ins(4, EvSyn); r != Inserted {
		t.Fatalf("insert into full table = %v, want an eviction", r)
	}
	present := func(i uint32) bool { k := key(i); _, ok := tbl.Lookup(&k); return ok }
	if !present(1) || present(2) || !present(third) || !present(4) {
		t.Fatalf("after first eviction: present 1, 2, 3, 4 = %v %v %v %v, want true false true true",
			present(1), present(2), present(third), present(4))
	}
	if st := tbl.Stats(); st.Evicted != 1 || st.Expired != 0 || st.Entries != 3 {
		t.Fatalf("stats %v", st)
	}
	// Entry 1 (ESTABLISHED, 5s) expires; it goes before any live one.
	clk.Advance(6 * time.Second)
	if _, r := ins(5, EvSyn); r != Inserted {
		t.Fatalf("insert = %v", r)
	}
	if present(1) || !present(third) || !present(4) || !present(5) {
		t.Fatal("the expired entry, in the emptier bucket, was not the one reused")
	}
	if st := tbl.Stats(); st.Evicted != 1 || st.Expired != 1 {
		t.Fatalf("stats %v", st)
	}
	// With only established entries left, a new SYN is refused.
	for _, i := range []uint32{third, 4, 5} {
		k := key(i)
		c, _ := tbl.Lookup(&k)
		tbl.Touch(&c, &k, EvAck)
	}
	for i := range uint32(10) {
		if c, r := ins(100+i, EvSyn); r != Full || c != (Conn{}) {
			t.Fatalf("insert into table of established = %+v %v, want full", c, r)
		}
	}
	if st := tbl.Stats(); st.Refused != 10 || st.Entries != 3 || st.Evicted != 1 {
		t.Fatalf("stats %v", st)
	}
	checkCounts(t, tbl, h)
}

// TestEvictionFullerBucketFirst: an insert into a full table evicts from
// the fuller of its key's two buckets, even when the other holds an older
// evictable entry; it goes to the other only when the fuller has none.
func TestEvictionFullerBucketFirst(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 3, Clock: clk, Hooks: h})
	if tbl.conns.nb != 2 {
		t.Fatalf("%d buckets, want 2: every key's two", tbl.conns.nb)
	}
	key := func(i uint32) Key { return v4Key(ProtoTCP, i, 1000, 80) }
	ins := func(i uint32, ev Event) InsertResult {
		k := key(i)
		clk.Advance(time.Millisecond)
		_, r := tbl.Insert(&k, i, 0, 0, ev)
		return r
	}
	bucketOf := func(i uint32) uint32 { return bucketHolding(t, tbl, key(i)) }
	firstChoice := func(from uint32, b uint32) uint32 {
		for i := from; ; i++ {
			k := key(i)
			w := k.words()
			if b1, _, _ := tbl.conns.place(tbl.seed.hash(&w)); b1 == b {
				return i
			}
		}
	}
	present := func(i uint32) bool { k := key(i); _, ok := tbl.Lookup(&k); return ok }
	ins(1, EvSyn) // the oldest evictable of all
	ins(2, EvSyn) // the other bucket, the emptier
	b := bucketOf(2)
	third := firstChoice(100, b)
	ins(third, EvSyn) // with 2: the fuller bucket
	if bucketOf(1) == b || bucketOf(third) != b {
		t.Fatalf("buckets of 1, 2, 3: %d %d %d", bucketOf(1), b, bucketOf(third))
	}
	if r := ins(4, EvSyn); r != Inserted {
		t.Fatalf("insert into a full table = %v", r)
	}
	if !present(1) || present(2) || !present(third) || !present(4) || bucketOf(4) != b {
		t.Fatalf("present 1, 2, 3, 4 = %v %v %v %v (4 in bucket %d, want %d): want the fuller bucket's oldest evicted, 4 in its slot",
			present(1), present(2), present(third), present(4), bucketOf(4), b)
	}
	// With nothing evictable in the fuller bucket, the other gives way.
	for _, i := range []uint32{third, 4} {
		k := key(i)
		c, _ := tbl.Lookup(&k)
		if tbl.Touch(&c, &k, EvAck); c.State != Established {
			t.Fatalf("key %d: %v after an ACK", i, c.State)
		}
	}
	if r := ins(5, EvSyn); r != Inserted {
		t.Fatalf("insert = %v", r)
	}
	if present(1) || !present(third) || !present(4) || !present(5) {
		t.Fatalf("present 1, 3, 4, 5 = %v %v %v %v, want the other bucket's entry evicted",
			present(1), present(third), present(4), present(5))
	}
	if st := tbl.Stats(); st.Evicted != 2 || st.Entries != 3 {
		t.Fatalf("stats %v", st)
	}
	checkCounts(t, tbl, h)
}

func TestSweep(t *testing.T) {
	clk := &ManualClock{}
	h := &countHooks{}
	tbl := newTestTable(t, Config{Capacity: 1000, Clock: clk, Hooks: h})
	for i := range uint32(500) {
		k := v4Key(ProtoTCP, i, 1, 80)
		ev := EvSyn // 60 s
		if i%2 == 0 {
			ev = EvAck // 900 s
		}
		tbl.Insert(&k, i%64, 0, 0, ev)
	}
	clk.Advance(61 * time.Second)
	total := 0
	for range 100 {
		total += tbl.Sweep(tbl.Slots() / 50)
	}
	if total != 250 {
		t.Fatalf("swept %d, want 250", total)
	}
	if st := tbl.Stats(); st.Entries != 250 || st.Expired != 250 {
		t.Fatalf("stats %v", st)
	}
	checkCounts(t, tbl, h)
	if tbl.Sweep(0) != 0 || tbl.Sweep(-1) != 0 {
		t.Fatal("Sweep(<=0) did work")
	}
}

func TestRangeStops(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 100, Templates: 10, Clock: clk})
	want := map[Key]uint32{}
	for i := range uint32(20) {
		k := v4Key(ProtoTCP, i, uint16(i), 80)
		tbl.Insert(&k, i, 1, 0, EvAck)
		want[k] = i
	}
	tk := v4Key(ProtoTCP, 0, 0, 80)
	tbl.InsertTemplate(&tk, 42, time.Minute)
	clk.Advance(time.Second)
	got := map[Key]uint32{}
	templates := 0
	tbl.Range(func(k Key, c Conn, left time.Duration, tmpl bool) bool {
		if tmpl {
			templates++
			if k != tk || c.Dest != 42 || left != 59*time.Second {
				t.Errorf("template %v %+v %v", k, c, left)
			}
			return true
		}
		if left != 899*time.Second || c.Fwd != 1 || c.State != Established {
			t.Errorf("%v: %+v left %v", k, c, left)
		}
		got[k] = c.Dest
		return true
	})
	if len(got) != len(want) || templates != 1 {
		t.Fatalf("Range listed %d conns %d templates, want %d 1", len(got), templates, len(want))
	}
	for k, d := range want {
		if got[k] != d {
			t.Fatalf("%v: dest %d, want %d", k, got[k], d)
		}
	}
	n := 0
	tbl.Range(func(Key, Conn, time.Duration, bool) bool { n++; return n < 5 })
	if n != 5 {
		t.Fatalf("Range went on after false: %d calls", n)
	}
}

func TestZeroAllocs(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 1000, Templates: 100, Clock: clk, Hooks: &countHooks{}})
	k := v4Key(ProtoTCP, 1, 1, 80)
	miss := v4Key(ProtoTCP, 2, 1, 80)
	tk := v4Key(ProtoTCP, 1, 0, 80)
	ref, _ := tbl.InsertTemplate(&tk, 1, time.Minute)
	c, _ := tbl.Insert(&k, 1, 0, ref, EvSyn)
	n := uint32(100)
	ops := map[string]func(){
		"lookup hit":      func() { tbl.Lookup(&k) },
		"lookup miss":     func() { tbl.Lookup(&miss) },
		"touch":           func() { clk.Advance(time.Millisecond); tbl.Touch(&c, &k, EvAck) },
		"touch writing":   func() { clk.Advance(20 * time.Second); tbl.Touch(&c, &k, EvAck) },
		"insert exists":   func() { tbl.Insert(&k, 1, 0, 0, EvSyn) },
		"lookup template": func() { tbl.LookupTemplate(&tk) },
		"insert template": func() { tbl.InsertTemplate(&tk, 1, time.Minute) },
		"sweep":           func() { tbl.Sweep(64) },
		"stats":           func() { tbl.Stats() },
		"insert new and evict": func() {
			n++
			nk := v6Key(ProtoTCP, uint64(n), 80)
			tbl.Insert(&nk, 2, 0, ref, EvSyn)
		},
	}
	for name, op := range ops {
		if a := testing.AllocsPerRun(2000, op); a != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, a)
		}
	}
	if st := tbl.Stats(); st.Evicted == 0 {
		t.Fatalf("the insert run never evicted: %v", st)
	}
}

func TestEntrySize(t *testing.T) {
	if EntrySize() != 64 {
		t.Fatalf("EntrySize() = %d, want 64 (one cache line)", EntrySize())
	}
	if sizeofBucket != 64 {
		t.Fatalf("bucket header is %d bytes, want 64", sizeofBucket)
	}
	tbl := newTestTable(t, Config{Capacity: 1 << 20, Templates: 1000})
	if got, want := uint64(tbl.Bytes()), storeBytes(1<<20, true)+storeBytes(1000, false); got != want {
		t.Fatalf("Bytes() = %d, storeBytes predicted %d", got, want)
	}
	per := float64(tbl.conns.bytes()) / (1 << 20)
	t.Logf("bytes per connection at capacity, headers and slack included: %.1f", per)
	if per > 91 {
		t.Fatalf("%.1f bytes per connection, want under 91", per)
	}
}

// TestTableIsNoScan shows the GC never scans the table: after a 1M-entry
// table is allocated and filled, the scannable heap grows by well under
// its 86 MB.
func TestTableIsNoScan(t *testing.T) {
	sample := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	scan := func() uint64 {
		runtime.GC()
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			t.Skipf("runtime lacks %s", sample[0].Name)
		}
		return sample[0].Value.Uint64()
	}
	before := scan()
	tbl := newTestTable(t, Config{Capacity: 1 << 20, Templates: 1 << 16, Clock: &ManualClock{}})
	for i := range uint64(1 << 16) {
		k := v6Key(ProtoTCP, i, 80)
		tbl.Insert(&k, 1, 0, 0, EvAck)
	}
	after := scan()
	runtime.KeepAlive(tbl)
	if grew := int64(after) - int64(before); grew > 1<<20 {
		t.Fatalf("scannable heap grew by %d bytes for a %d-byte table", grew, tbl.Bytes())
	}
}

// stepClock is a Clock of another type than the package's own, which the
// table reads through the interface.
type stepClock struct{ t atomic.Int64 }

func (c *stepClock) Now() time.Duration { return time.Duration(c.t.Load()) }

// TestClockKinds: the table's time follows each kind of clock it reads
// (ManualClock, SystemClock and any other Clock), from the reading at New.
func TestClockKinds(t *testing.T) {
	manual, other := &ManualClock{}, &stepClock{}
	for _, c := range []struct {
		name    string
		clock   Clock
		advance func(time.Duration)
	}{
		{"manual", manual, manual.Advance},
		{"other", other, func(d time.Duration) { other.t.Add(int64(d)) }},
	} {
		c.advance(5 * time.Second)
		tbl := newTestTable(t, Config{Capacity: 16, Clock: c.clock})
		if got := tbl.now(); got != 0 {
			t.Fatalf("%s: now = %d ms at New, want 0", c.name, got)
		}
		c.advance(1500 * time.Millisecond)
		if got := tbl.now(); got != 1500 {
			t.Fatalf("%s: now = %d ms, want 1500", c.name, got)
		}
	}
	sys := SystemClock()
	tbl := newTestTable(t, Config{Capacity: 16, Clock: sys})
	for deadline := time.Now().Add(5 * time.Second); sys.Now()-tbl.base < 5*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("the system clock did not move in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	before := uint64((sys.Now() - tbl.base) / time.Millisecond)
	got := tbl.now()
	after := uint64((sys.Now() - tbl.base) / time.Millisecond)
	if got < before || got > after {
		t.Fatalf("system clock: now = %d ms, want %d..%d", got, before, after)
	}
}

// TestBusyFlowWritesOncePerSlack: an ESTABLISHED flow with a packet
// every 100 ms for an hour writes its entry's meta word (or any other
// word) only when the exact expiry has moved past the stored one: once
// per slack (14.062 s) plus at most one packet's gap, about 255 times
// instead of 36000, and it never expires.
func TestBusyFlowWritesOncePerSlack(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10, Clock: clk})
	k := v4Key(ProtoTCP, 1, 1000, 80)
	c, _ := tbl.Insert(&k, 1, 0, 0, EvSyn)
	tbl.Touch(&c, &k, EvAck) // ESTABLISHED: a state change writes
	e := tbl.conns.entry(uint32(c.ref>>32) - 1)
	words := func() [8]uint64 {
		return [8]uint64{e.caddr[0].Load(), e.caddr[1].Load(), e.vaddr[0].Load(), e.vaddr[1].Load(),
			e.ports.Load(), e.meta.Load(), e.since.Load(), e.bind.Load()}
	}
	sl := slackOf(DefaultTimeouts().Established)
	const gap = 100 * time.Millisecond
	last, lastAt, writes := words(), time.Duration(0), 0
	for clk.Now() < time.Hour {
		clk.Advance(gap)
		if r := tbl.Touch(&c, &k, EvAck); r != Hit || c.State != Established {
			t.Fatalf("at %v: touch = %v %v", clk.Now(), r, c.State)
		}
		w := words()
		if w == last {
			continue
		}
		if d := clk.Now() - lastAt; d <= sl || d > sl+gap {
			t.Fatalf("at %v: a write %v after the last, want more than the %v slack and at most one gap more", clk.Now(), d, sl)
		}
		if exp := time.Duration(payload(w[5])) * time.Millisecond; exp != clk.Now()+lifetime(DefaultTimeouts().Established) {
			t.Fatalf("at %v: wrote expiry %v, want now + timeout + slack", clk.Now(), exp)
		}
		last, lastAt, writes = w, clk.Now(), writes+1
	}
	if want := int(time.Hour / (sl + gap)); writes < want-1 || writes > want+1 {
		t.Fatalf("%d writes in an hour, want about %d", writes, want)
	}
}

// bucketHolding is the bucket whose slots hold k's entry.
func bucketHolding(t *testing.T, tbl *Table, k Key) uint32 {
	t.Helper()
	w := k.words()
	b1, b2, tag := tbl.conns.place(tbl.seed.hash(&w))
	v, ok := tbl.conns.lookup(b1, b2, tag, &w)
	if !ok {
		t.Fatalf("key %v not in the table", k)
	}
	return v.slot / bucketSlots
}
