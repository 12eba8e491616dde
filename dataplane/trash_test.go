package dataplane

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// manualNow is a clock for the registry's trash timer.
type manualNow struct{ t time.Duration }

func (m *manualNow) now() time.Duration { return m.t }

func destID(t *testing.T, ids map[DestKey]uint32, tbl *vs.Table, svc, real int) uint32 {
	t.Helper()
	s := tbl.Services[svc]
	r := s.Reals[real]
	id, ok := ids[DestKey{svcMapKey(s.Key), r.Addr, r.Port}]
	if !ok {
		t.Fatalf("no ID for %s in %s", r.AddrPort(), s.Key)
	}
	return id
}

// snapID is the ID snap gives real server real of tbl's first service
// (the snapshot lists dests in the kernel's order, not the table's).
func snapID(t *testing.T, snap *Snapshot, tbl *vs.Table, real int) uint32 {
	t.Helper()
	r := tbl.Services[0].Reals[real]
	for _, d := range snap.Services[0].Dests {
		if d.Addr == r.Addr.As4() && d.Port == r.Port {
			return d.ID
		}
	}
	t.Fatalf("%s not in the snapshot", r.AddrPort())
	return 0
}

func without(tbl *vs.Table, real int) *vs.Table {
	c := tbl.Clone()
	c.Services[0].Reals = slices.Delete(c.Services[0].Reals, real, real+1)
	return c
}

// TestIPVSTrashGetDest: ip_vs_add_dest takes a deleted dest back from the
// trash (ip_vs_trash_get_dest) when protocol, virtual address and port (or
// fwmark), real address and port all match, also after the service was
// deleted and created again; then its traffic counters restart
// (__ip_vs_update_dest's ip_vs_zero_stats for another svc).
func TestIPVSTrashGetDest(t *testing.T) {
	clk := &manualNow{}
	r := NewRegistryClock(clk.now)
	t1 := oneService(vs.Route, "rr", 1, 1)
	_, d1, err := r.Assign(t1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := destID(t, d1, t1, 0, 1)

	// -d .12, then -a .12 again: the same ID.
	p, err := r.Plan(without(t1, 1), nil)
	if err != nil || len(p.Trashed) != 1 || p.Trashed[0].Addr != t1.Services[0].Reals[1].Addr {
		t.Fatalf("delete: plan %+v, %v", p, err)
	}
	if err := r.Commit(p); err != nil {
		t.Fatal(err)
	}
	if k, ok := r.Trashed(b); !ok || k.Addr != t1.Services[0].Reals[1].Addr {
		t.Fatalf("deleted dest not in the trash: %v %v", k, ok)
	}
	clk.t += 200 * time.Millisecond
	p, err = r.Plan(t1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := destID(t, p.Dest, t1, 0, 1); got != b || len(p.Revived) != 1 || len(p.Restarted) != 0 {
		t.Fatalf("re-added dest got ID %d (revived %v, restarted %v), want %d from the trash", got, p.Revived, p.Restarted, b)
	}
	if err := r.Commit(p); err != nil {
		t.Fatal(err)
	}
	if r.TrashLen() != 0 {
		t.Fatalf("trash holds %d after the revival", r.TrashLen())
	}

	// Same address, another port: a new dest.
	t2 := without(t1, 1)
	if err := t2.AddReal(t1.Services[0].Key, vs.Real{Addr: t1.Services[0].Reals[1].Addr, Port: 8080, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	_, d2, err := r.Assign(t2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := destID(t, d2, t2, 0, 1); got == b {
		t.Fatalf("port 8080 took the trashed port-80 dest's ID %d", got)
	}

	// -D the service (both dests to the trash), -A it again, -a .12:80:
	// the same ID, with its counters restarted.
	if _, _, err := r.Assign(&vs.Table{}, nil); err != nil {
		t.Fatal(err)
	}
	if r.TrashLen() != 3 {
		t.Fatalf("trash holds %d dests after -D, want 3", r.TrashLen())
	}
	p, err = r.Plan(t1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := destID(t, p.Dest, t1, 0, 1); got != b || !slices.Contains(p.Restarted, b) {
		t.Fatalf("after -D/-A the dest got ID %d (restarted %v), want %d restarted", got, p.Restarted, b)
	}

	// A firewall-mark service's dests are keyed by the mark.
	fw := &vs.Table{Marks: []vs.Mark{{Mark: 7, Matches: []vs.Match{{Proto: vs.TCP, Addr: vip, PortLo: 80, PortHi: 80}}}}}
	if err := fw.AddService(vs.Service{Key: vs.Key{FWMark: 7}, Sched: "rr", Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.21"), Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	_, d3, err := r.Assign(fw, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := destID(t, d3, fw, 0, 0)
	empty := fw.Clone()
	empty.Services[0].Reals = nil
	if _, _, err := r.Assign(empty, nil); err != nil {
		t.Fatal(err)
	}
	_, d4, err := r.Assign(fw, nil)
	if err != nil || destID(t, d4, fw, 0, 0) != f {
		t.Fatalf("fwmark dest not revived: %v %v", d4, err)
	}
}

// TestIPVSDestTrashExpire: the trash timer runs every 60 s from the first
// deletion into an empty trash; a round that finds an entry unreferenced
// marks it idle, and the first round at least 120 s later frees it
// (ip_vs_dest_trash_expire). A referenced entry is skipped, and its 120 s
// start only when a round finds it free.
func TestIPVSDestTrashExpire(t *testing.T) {
	clk := &manualNow{t: 1000 * time.Second}
	r := NewRegistryClock(clk.now)
	t1 := oneService(vs.Route, "rr", 1, 1, 1)
	_, d1, _ := r.Assign(t1, nil)
	b, c := destID(t, d1, t1, 0, 1), destID(t, d1, t1, 0, 2)
	busy := map[uint32]bool{c: true}
	isBusy := func(id uint32) bool { return busy[id] }

	clk.t += 10 * time.Second // 1010: delete .12 and .13
	if _, _, err := r.Assign(without(without(t1, 2), 1), nil); err != nil {
		t.Fatal(err)
	}
	if at, ok := r.NextTrashRound(); !ok || at != 1070*time.Second {
		t.Fatalf("trash timer at %v (armed %v), want 1070s", at, ok)
	}
	step := func(to time.Duration) []uint32 {
		clk.t = to * time.Second
		return r.ExpireTrash(isBusy)
	}
	// 1070: .12 marked idle; .13 busy. 1130: too early for .12.
	if f := step(1069); f != nil {
		t.Fatalf("freed %v before the first round", f)
	}
	if f := step(1070); f != nil {
		t.Fatalf("first round freed %v", f)
	}
	busy[c] = false // .13's last connection goes at 1100
	if f := step(1130); f != nil {
		t.Fatalf("round at 1130 freed %v; .12 is idle only since 1070", f)
	}
	// 1190: .12 idle for 120 s: freed. .13 idle since 1130 only.
	if f := step(1190); !slices.Equal(f, []uint32{b}) {
		t.Fatalf("round at 1190 freed %v, want [%d]", f, b)
	}
	if _, ok := r.Trashed(b); ok {
		t.Fatal(".12 still in the trash")
	}
	// Several rounds due at once run in order: 1250 frees .13 (idle since
	// 1130), and with the trash empty the timer stops.
	if f := step(1400); !slices.Equal(f, []uint32{c}) {
		t.Fatalf("rounds up to 1400 freed %v, want [%d]", f, c)
	}
	if _, ok := r.NextTrashRound(); ok {
		t.Fatal("trash timer still armed with an empty trash")
	}
	// Re-adding .12 now gives a new dest: a fresh ID while there are any.
	_, d2, _ := r.Assign(without(t1, 2), nil)
	if got := destID(t, d2, t1, 0, 1); got == b {
		t.Fatalf("re-added after expiry, .12 got its old ID %d back", got)
	}
	// A freed ID is on the free list: once fresh IDs run out, it is reused.
	r.st.nextDst = MaxDests
	tbl := without(t1, 2)
	if err := tbl.AddReal(tbl.Services[0].Key, vs.Real{Addr: netip.MustParseAddr("198.18.0.99"), Port: 80, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	p3, err := r.Plan(tbl, isBusy)
	if err != nil {
		t.Fatal(err)
	}
	if got := destID(t, p3.Dest, tbl, 0, 2); (got != b && got != c) || !slices.Equal(p3.Restarted, []uint32{got}) {
		t.Fatalf("with fresh IDs gone, new dest got %d (restarted %v), want a freed one (%d or %d), restarted", got, p3.Restarted, b, c)
	}
}

// TestTrashRevivalBeatsTimer: a dest re-added before its entry is freed
// gets its ID back even though a round has marked it idle; deleted again,
// its idle mark starts over (__ip_vs_del_dest sets idle_start = 0).
func TestTrashRevivalBeatsTimer(t *testing.T) {
	clk := &manualNow{}
	r := NewRegistryClock(clk.now)
	t1 := oneService(vs.Route, "rr", 1, 1)
	_, d1, _ := r.Assign(t1, nil)
	b := destID(t, d1, t1, 0, 1)
	r.Assign(without(t1, 1), nil)
	clk.t = 179 * time.Second
	r.ExpireTrash(nil) // rounds at 60 (idle) and 120
	_, d2, _ := r.Assign(t1, nil)
	if destID(t, d2, t1, 0, 1) != b {
		t.Fatal("re-added at 179 s: not revived")
	}
	// Deleted again at 179 into an empty trash: mod_timer moves the
	// pending round from 180 to 239, which marks it idle; 299 is too
	// early, 359 frees it.
	r.Assign(without(t1, 1), nil)
	if at, _ := r.NextTrashRound(); at != 239*time.Second {
		t.Fatalf("timer at %v, want 239s", at)
	}
	clk.t = 358 * time.Second
	if f := r.ExpireTrash(nil); f != nil {
		t.Fatalf("freed %v: the idle mark of the first stay carried over", f)
	}
	clk.t = 359 * time.Second
	if f := r.ExpireTrash(nil); !slices.Equal(f, []uint32{b}) {
		t.Fatalf("round at 359 s freed %v, want [%d]", f, b)
	}
}

// TestCompileRefusedChangesNothing: a table refused after the IDs were
// worked out leaves the registry, the thresholds and the schedulers in
// force as they were, so the next rebuild of the old table (a neighbour
// change triggers one) keeps every real server's ID.
func TestCompileRefusedChangesNothing(t *testing.T) {
	loads := sched.NewLoads(MaxDests)
	reg := NewRegistry()
	t1 := oneService(vs.Route, "wlc", 1, 1)
	t1.Services[0].Reals[0].Upper = 2
	opt := BuildOptions{Registry: reg, Loads: loads, Resolver: StaticResolver{}}
	s1, err := Build(t1, opt)
	if err != nil {
		t.Fatal(err)
	}
	a, b := snapID(t, s1, t1, 0), snapID(t, s1, t1, 1)
	loads.Bind(a, true)
	loads.Bind(a, true) // a reaches its upper threshold of 2: overloaded
	if !loads.Overloaded(a) {
		t.Fatal("setup: a not overloaded")
	}
	// The refused table: drops b, raises a's threshold, and adds an mh
	// service that the scheduler options refuse (not a prime table size).
	t2 := without(t1, 1)
	t2.Services[0].Reals[0].Upper = 10
	if err := t2.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 81}, Sched: "mh", Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.30"), Port: 81, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	bad := opt
	bad.Prev = s1
	bad.Sched.MaglevSize = 100
	if _, err := Build(t2, bad); err == nil {
		t.Fatal("mh with table size 100 accepted")
	}
	if !loads.Overloaded(a) {
		t.Error("the refused table's threshold was installed: a's overload flag cleared")
	}
	// The rebuild of the table in force.
	opt.Prev = s1
	s2, err := Build(t1, opt)
	if err != nil {
		t.Fatal(err)
	}
	if snapID(t, s2, t1, 0) != a || snapID(t, s2, t1, 1) != b {
		t.Fatalf("after a refused table the rebuild moved IDs: %d,%d -> %d,%d", a, b, snapID(t, s2, t1, 0), snapID(t, s2, t1, 1))
	}
	// The wlc scheduler in force still follows the counters: its tree
	// last saw a at 2 and b at 0, and would pick b if it had been detached.
	loads.Unbind(a, true)
	loads.Unbind(a, true)
	for range 3 {
		loads.Bind(b, true)
	}
	if i := s2.Services[0].Sched.Schedule(&sched.Flow{}); i < 0 || s2.Services[0].Dests[i].ID != a {
		t.Fatalf("wlc picked dest %d, not a, with b at 3 connections and a at 0", i)
	}
}

// TestCompileIsPure: Compile changes nothing until Commit; Abort drops the
// compiled schedulers.
func TestCompileIsPure(t *testing.T) {
	loads := sched.NewLoads(MaxDests)
	reg := NewRegistry()
	t1 := oneService(vs.Route, "rr", 1, 1)
	opt := BuildOptions{Registry: reg, Loads: loads, Resolver: StaticResolver{}}
	s1, err := Build(t1, opt)
	if err != nil {
		t.Fatal(err)
	}
	b := snapID(t, s1, t1, 1)
	opt.Prev = s1
	p, err := Compile(without(t1, 1), opt)
	if err != nil {
		t.Fatal(err)
	}
	if reg.TrashLen() != 0 {
		t.Fatal("Compile moved a dest to the trash")
	}
	p.Abort()
	if err := p.Commit(); err == nil {
		t.Fatal("an aborted plan committed")
	}
	p, err = Compile(without(t1, 1), opt)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Compile(t1, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg.Trashed(b); !ok {
		t.Fatal("Commit did not trash the deleted dest")
	}
	if err := q.Commit(); err == nil {
		t.Fatal("a plan made before another commit was accepted")
	}
}
