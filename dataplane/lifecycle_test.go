package dataplane

import (
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/vs"
)

// lifeRig is a rig whose snapshot can be rebuilt with the same registry,
// as the control plane does after a change.
type lifeRig struct {
	*rig
	reg *Registry
	tbl *vs.Table
}

func newLifeRig(t *testing.T, tbl *vs.Table) *lifeRig {
	t.Helper()
	r := &lifeRig{rig: newRig(t, tbl, 1024), reg: NewRegistry()}
	r.rebuild(t, tbl)
	return r
}

func (r *lifeRig) rebuild(t *testing.T, tbl *vs.Table) {
	t.Helper()
	snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Resolver: StaticResolver{}, Ifaces: r.snap.Ifaces, Prev: r.snap})
	if err != nil {
		t.Fatal(err)
	}
	r.snap, r.tbl = snap, tbl
}

// send runs one TCP frame from 198.18.0.10:port and returns the verdict
// and the real server's MAC when forwarded.
func (r *lifeRig) send(t *testing.T, port uint16, syn, ack, fin bool) (Verdict, [6]byte) {
	t.Helper()
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, port, syn, ack, fin, true, 0)
	buf := chunk(f)
	r.p.Last = Decision{}
	v, out := r.p.Process(r.snap, buf, headroom, len(f))
	var mac [6]byte
	if v == VerdictForward {
		mac = [6]byte(buf[out.Off : out.Off+6])
	}
	return v, mac
}

func (r *lifeRig) sysctls(t *testing.T, mode int, nodest, quiescent bool) {
	t.Helper()
	if err := r.ct.SetSysctls(conntrack.Sysctls{ConnReuseMode: mode, ExpireNodestConn: nodest, ExpireQuiescentTemplate: quiescent}); err != nil {
		t.Fatal(err)
	}
}

// TestConnExpireNowCountsOldConn follows ip_vs_in_hook's reuse block and
// ip_vs_conn_expire_now: a SYN on an uncontrolled TIME_WAIT connection is
// scheduled at once while the old connection still counts on its server
// (its timer, and ip_vs_unbind_dest, run after the packet). With lc and
// two idle servers, the old connection's server is the busier one, so
// the new connection goes to the other; had the old one been uncounted
// first, the tie would send it back to the same server.
func TestConnExpireNowCountsOldConn(t *testing.T) {
	r := newLifeRig(t, oneService(vs.Route, "lc", 1, 1))
	v, first := r.send(t, 1000, true, false, false)
	if v != VerdictForward {
		t.Fatal("first SYN dropped")
	}
	r.clock.Advance(1000000)
	r.send(t, 1000, false, false, true) // SYN_RECV + FIN: TIME_WAIT
	v, second := r.send(t, 1000, true, false, false)
	if v != VerdictForward || !r.p.Last.New {
		t.Fatalf("SYN on TIME_WAIT: verdict %d, decision %+v; want a new connection", v, r.p.Last)
	}
	if second == first {
		t.Fatalf("lc sent the reused port back to %x: the old TIME_WAIT connection was not counted when scheduling", first)
	}
	// Afterwards the old one is gone from the counters: one connection
	// (SYN_RECV, active) in all.
	var act, inact int32
	for i := range r.snap.Services[0].Dests {
		id := r.snap.Services[0].Dests[i].ID
		act += r.loads.Active(id)
		inact += r.loads.Inactive(id)
	}
	if act != 1 || inact != 0 {
		t.Fatalf("after the packet: active %d inactive %d, want 1 0", act, inact)
	}
}

// TestIsNewConnExpectedControlledConn follows is_new_conn_expected's
// cp->control check: a SYN on a persistent (controlled) connection in
// TIME_WAIT is not a new decision; it takes the entry to SYN_RECV on the
// same server and does not touch the template.
func TestIsNewConnExpectedControlledConn(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1, 1)
	tbl.Services[0].Persistent = true
	tbl.Services[0].Timeout = 300
	r := newLifeRig(t, tbl)
	_, first := r.send(t, 1000, true, false, false)
	r.send(t, 1000, false, false, true) // TIME_WAIT
	v, again := r.send(t, 1000, true, false, false)
	if v != VerdictForward || r.p.Last.New || again != first {
		t.Fatalf("SYN on a controlled TIME_WAIT: verdict %d, decision %+v, server %x (first %x); want the same connection", v, r.p.Last, again, first)
	}
	var k conntrack.Key
	keyOf(r.p.pk, &k)
	c, ok := r.ct.Lookup(&k)
	if !ok || c.State != conntrack.SynRecv || !c.Controlled() {
		t.Fatalf("entry %+v %v, want SYN_RECV under its template", c, ok)
	}
}

// TestInHookReuseBeforeServerCheck follows the order of ip_vs_in_hook:
// the reuse block runs before "check the server status", so a SYN on an
// uncontrolled TIME_WAIT connection whose server was deleted is
// scheduled afresh, while other packets of a connection to a deleted
// server are dropped (expire_nodest_conn 0) and leave the entry alone.
func TestInHookReuseBeforeServerCheck(t *testing.T) {
	r := newLifeRig(t, oneService(vs.Route, "rr", 1, 1))
	_, a := r.send(t, 1000, true, false, false)
	r.send(t, 1000, false, false, true) // TIME_WAIT on a
	r.send(t, 1001, true, false, false) // goes to b (rr)
	_, b := r.send(t, 1002, true, false, false)
	if b != a {
		t.Fatalf("rr did not alternate: %x %x", a, b)
	}
	r.send(t, 1002, false, true, false) // ESTABLISHED on a
	next := r.tbl.Clone()
	var kept []vs.Real
	for _, rl := range next.Services[0].Reals {
		if SyntheticMAC(rl.Addr) != a {
			kept = append(kept, rl)
		}
	}
	next.Services[0].Reals = kept
	r.rebuild(t, next)
	v, got := r.send(t, 1000, true, false, false)
	if v != VerdictForward || !r.p.Last.New || got == a {
		t.Fatalf("SYN on TIME_WAIT to a deleted server: verdict %d %+v to %x; want scheduled afresh", v, r.p.Last, got)
	}
	drops := r.c.Drops[DropDestUnavailable].Load()
	if v, _ := r.send(t, 1002, false, true, false); v != VerdictDrop || r.c.Drops[DropDestUnavailable].Load() != drops+1 {
		t.Fatalf("ACK to a deleted server: verdict %d", v)
	}
	var k conntrack.Key
	keyOf(r.p.pk, &k)
	if _, ok := r.ct.Lookup(&k); !ok {
		t.Fatal("expire_nodest_conn=0: the entry of a deleted server was expired")
	}
	// expire_nodest_conn=1: the next packet expires the entry now.
	r.sysctls(t, 1, true, false)
	if v, _ := r.send(t, 1002, false, true, false); v != VerdictDrop {
		t.Fatalf("ACK to a deleted server with expire_nodest_conn: verdict %d", v)
	}
	if _, ok := r.ct.Lookup(&k); ok {
		t.Fatal("expire_nodest_conn=1: the entry of a deleted server is still there")
	}
}

// TestInHookExpireNodestQuiesced follows ip_vs_in_hook's first reuse
// branch: with expire_nodest_conn=1 a SYN on any connection whose server
// has weight 0 is scheduled afresh; with conn_reuse_mode=0 it is not.
func TestInHookExpireNodestQuiesced(t *testing.T) {
	for _, mode := range []int{0, 1} {
		r := newLifeRig(t, oneService(vs.Route, "rr", 1, 1))
		r.sysctls(t, mode, true, false)
		_, a := r.send(t, 1000, true, false, false)
		r.send(t, 1000, false, true, false) // ESTABLISHED
		next := r.tbl.Clone()
		for i := range next.Services[0].Reals {
			if SyntheticMAC(next.Services[0].Reals[i].Addr) == a {
				next.Services[0].Reals[i].Weight = 0
			}
		}
		r.rebuild(t, next)
		v, got := r.send(t, 1000, true, false, false)
		if v != VerdictForward {
			t.Fatalf("mode %d: verdict %d", mode, v)
		}
		if moved := got != a; moved != (mode != 0) || r.p.Last.New != (mode != 0) {
			t.Fatalf("conn_reuse_mode %d, expire_nodest_conn 1: SYN to a weight-0 server went to %x (was %x), decision %+v", mode, got, a, r.p.Last)
		}
	}
}

func TestReuseAllocs(t *testing.T) {
	r := newLifeRig(t, oneService(vs.Route, "lc", 1, 1))
	syn := tcpFrame(t, [4]byte{198, 18, 0, 10}, 1000, true, false, false, true, 0)
	fin := tcpFrame(t, [4]byte{198, 18, 0, 10}, 1000, false, false, true, true, 0)
	sb, fb := chunk(syn), chunk(fin)
	n := testing.AllocsPerRun(200, func() {
		copy(sb[headroom:], syn)
		r.p.Process(r.snap, sb, headroom, len(syn))
		copy(fb[headroom:], fin)
		r.p.Process(r.snap, fb, headroom, len(fin))
	})
	if n != 0 {
		t.Fatalf("%v allocs per SYN/FIN reuse cycle", n)
	}
}

// TestUnbindDestOverloadAfterReuse follows ip_vs_unbind_dest's overload
// re-check running from the old connection's timer, after the packet: a
// lone server at its upper threshold (-x 1) with one TIME_WAIT
// connection is still overloaded when a SYN reuses that port, so the SYN
// finds no server; once the old connection has gone, the flag clears.
func TestUnbindDestOverloadAfterReuse(t *testing.T) {
	tbl := oneService(vs.Route, "lc", 1)
	tbl.Services[0].Reals[0].Upper = 1
	r := newLifeRig(t, tbl)
	if v, _ := r.send(t, 1000, true, false, false); v != VerdictForward {
		t.Fatal("first SYN dropped")
	}
	r.send(t, 1000, false, false, true) // TIME_WAIT; the server stays at its threshold
	id := r.snap.Services[0].Dests[0].ID
	if !r.loads.Overloaded(id) {
		t.Fatal("server at -x 1 with one connection is not overloaded")
	}
	v, _ := r.send(t, 1000, true, false, false)
	if v != VerdictDrop || !r.p.Last.New || r.p.Last.Found || r.p.Last.Drop != DropNoDest {
		t.Fatalf("SYN reusing the port of the overloaded server's only connection: verdict %d %+v; want no server", v, r.p.Last)
	}
	if r.loads.Overloaded(id) || r.loads.Inactive(id) != 0 {
		t.Fatal("the old connection's unbind did not clear the overload after the packet")
	}
	if v, _ := r.send(t, 1000, true, false, false); v != VerdictForward {
		t.Fatalf("the retried SYN: verdict %d", v)
	}
}
