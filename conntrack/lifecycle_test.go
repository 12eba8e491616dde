package conntrack

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestIsNewConnExpected follows is_new_conn_expected as ip_vs_in_hook
// calls it: which entries a SYN reopens for each conn_reuse_mode, and
// that a controlled entry never is (the SYN takes it to SYN_RECV on the
// same server).
func TestIsNewConnExpected(t *testing.T) {
	cases := []struct {
		mode       int
		state      State
		controlled bool
		reopen     bool
	}{
		{1, TimeWait, false, true},
		{1, Close, false, true},
		{1, FinWait, false, false},
		{1, Established, false, false},
		{1, TimeWait, true, false},
		{1, Close, true, false},
		{0, TimeWait, false, false},
		{0, Close, false, false},
		{2, FinWait, false, true},
		{2, TimeWait, false, true},
		{3, FinWait, false, true},
		{3, FinWait, true, false},
		{3, CloseWait, false, false},
	}
	for _, tc := range cases {
		clk := &ManualClock{}
		h := &countHooks{}
		tbl := newTestTable(t, Config{Capacity: 10, Templates: 4, Clock: clk, Hooks: h})
		sys := DefaultSysctls()
		sys.ConnReuseMode = tc.mode
		if err := tbl.SetSysctls(sys); err != nil {
			t.Fatal(err)
		}
		var ref TemplateRef
		if tc.controlled {
			tk := v4Key(ProtoTCP, 1, 0, 80)
			ref, _ = tbl.InsertTemplate(&tk, 3, time.Minute)
		}
		k := v4Key(ProtoTCP, 1, 1234, 80)
		c, _ := tbl.Insert(&k, 3, 0, ref, EvAck)
		forceState(t, tbl, &c, tc.state)
		if got := tbl.NewConnExpected(&c); got != tc.reopen {
			t.Errorf("mode %d %v controlled=%v: NewConnExpected = %v", tc.mode, tc.state, tc.controlled, got)
		}
		clk.Advance(time.Second)
		r := tbl.Touch(&c, &k, EvSyn)
		want := Hit
		if tc.reopen {
			want = Reopen
		}
		if r != want {
			t.Errorf("mode %d %v controlled=%v: SYN = %v, want %v", tc.mode, tc.state, tc.controlled, r, want)
			continue
		}
		if r == Hit && c.State != Next(tc.state, EvSyn) {
			t.Errorf("mode %d %v: SYN left %v", tc.mode, tc.state, c.State)
		}
		if r == Reopen {
			tbl.Retire(&c)
		}
		checkCounts(t, tbl, h)
	}
	if err := (&Table{}).SetSysctls(Sysctls{ConnReuseMode: 4}); err == nil {
		t.Fatal("conn_reuse_mode 4 accepted")
	}
}

// TestConnExpireOnTime follows ip_vs_conn_expire: every connection has
// its own timer, so ExpireDue at any millisecond has released exactly the
// connections whose timeout has passed, whatever their states and
// refreshes, and the hooks count exactly the others. Random workloads
// against a brute-force list of expiries.
func TestConnExpireOnTime(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		clk := &ManualClock{}
		h := &countHooks{}
		to := DefaultTimeouts()
		to.Established = time.Duration(1+rng.IntN(30)) * time.Second
		to.SynRecv = time.Duration(1+rng.IntN(5)) * time.Second
		to.UDP = 2500 * time.Millisecond
		tbl := newTestTable(t, Config{Capacity: 2000, Clock: clk, Hooks: h, Timeouts: to})
		type live struct {
			c   Conn
			k   Key
			exp time.Duration
		}
		conns := map[Key]*live{}
		for step := range 4000 {
			clk.Advance(time.Duration(rng.IntN(40)) * time.Millisecond)
			now := clk.Now()
			if step%7 == 0 {
				tbl.ExpireDue()
				for k, l := range conns {
					if l.exp <= now {
						delete(conns, k)
					}
				}
				if st := tbl.Stats(); int(st.Entries) != len(conns) {
					t.Fatalf("seed %d step %d at %v: table holds %d entries, want %d", seed, step, now, st.Entries, len(conns))
				}
				checkCounts(t, tbl, h)
			}
			if rng.IntN(20) == 0 {
				tbl.SetTimeouts(time.Duration(1+rng.IntN(30))*time.Second, 0, 0)
			}
			proto := uint8(ProtoTCP)
			if rng.IntN(4) == 0 {
				proto = ProtoUDP
			}
			k := v4Key(proto, uint32(rng.IntN(300)), 1000, 80)
			ev := Event(rng.IntN(5))
			if proto == ProtoUDP {
				ev = EvNone
			}
			if l, ok := conns[k]; ok && l.exp > now {
				prev := l.c.State
				switch tbl.Touch(&l.c, &k, ev) {
				case Hit:
					// The slack rule: a packet that keeps the state and
					// finds the expiry within the slack of the exact one
					// leaves it.
					to := time.Duration(tbl.timeouts.of(l.c.State)) * time.Millisecond
					if l.c.State != prev || l.exp < now+to || l.exp > now+lifetime(to) {
						l.exp = now + lifetime(to)
					}
				case Reopen:
					tbl.Retire(&l.c)
					delete(conns, k)
				default:
					t.Fatalf("seed %d: Touch on live entry gone", seed)
				}
				continue
			}
			if l, ok := conns[k]; ok && l.exp <= now {
				delete(conns, k) // released lazily by the Insert below
			}
			c, r := tbl.Insert(&k, uint32(rng.IntN(8)), 0, 0, ev)
			if r != Inserted {
				t.Fatalf("seed %d: insert %v", seed, r)
			}
			conns[k] = &live{c: c, k: k, exp: now + lifetime(time.Duration(tbl.timeouts.of(c.State))*time.Millisecond)}
		}
	}
}

// TestExpireDueScansLittle: with nothing due, ExpireDue reads only the
// group bounds, and it reads a group again only when something in it is
// due.
func TestExpireDueScansLittle(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 10000, Clock: clk})
	for i := range 5000 {
		k := v4Key(ProtoUDP, uint32(i), 1000, 53)
		tbl.Insert(&k, 1, 0, 0, EvNone)
	}
	// Each expires at 300 s plus its slack, 4.687 s: in second 304.
	life := lifetime(DefaultTimeouts().UDP)
	for g := range tbl.conns.gdue {
		if b := tbl.conns.gdue[g].Load(); b != noDue && b != 304 {
			t.Fatalf("group %d bound %d, want 304 or none", g, b)
		}
	}
	clk.Set(life - time.Millisecond)
	if n := tbl.ExpireDue(); n != 0 {
		t.Fatalf("expired %d early", n)
	}
	clk.Set(life)
	if n := tbl.ExpireDue(); n != 5000 {
		t.Fatalf("expired %d, want 5000", n)
	}
	for g := range tbl.conns.gdue {
		if b := tbl.conns.gdue[g].Load(); b != noDue {
			t.Fatalf("group %d bound %d after all expired", g, b)
		}
	}
}

func TestExpireDueAllocs(t *testing.T) {
	clk := &ManualClock{}
	tbl := newTestTable(t, Config{Capacity: 1000, Clock: clk})
	i := 0
	if n := testing.AllocsPerRun(200, func() {
		k := v4Key(ProtoUDP, uint32(i), 1000, 53)
		i++
		tbl.Insert(&k, 1, 0, 0, EvNone)
		clk.Advance(10 * time.Second)
		tbl.ExpireDue()
		tbl.SweepTemplates(100)
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
