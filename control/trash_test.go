package control_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/vs"
)

// keepAlive opens n TCP sessions (SYN, then an ACK with data) from ports
// 3000.. and returns them.
func keepAlive(t *testing.T, s *controltest.Served, n int) []uint16 {
	t.Helper()
	var ports []uint16
	for i := range n {
		p := uint16(3000 + i)
		if v := s.Director.Feed(frame(t, p, true, 0)); v != dataplane.VerdictForward {
			t.Fatalf("session %d: SYN not forwarded (%v)", i, v)
		}
		if v := s.Director.Feed(frame(t, p, false, 100)); v != dataplane.VerdictForward {
			t.Fatalf("session %d: ACK not forwarded (%v)", i, v)
		}
		ports = append(ports, p)
	}
	return ports
}

// resume sends one more request on every session and fails the test for
// each one that is not forwarded.
func resume(t *testing.T, s *controltest.Served, ports []uint16, when string) {
	t.Helper()
	lost := 0
	for _, p := range ports {
		if s.Director.Feed(frame(t, p, false, 100)) != dataplane.VerdictForward {
			lost++
		}
	}
	st := s.Server.Status()
	if lost > 0 || st.Drops["dest_unavailable"] != 0 {
		t.Fatalf("%s: %d of %d keep-alive sessions dropped (dest_unavailable %d)", when, lost, len(ports), st.Drops["dest_unavailable"])
	}
}

func realOf(t *testing.T, s *controltest.Served, addr string) api.Real {
	t.Helper()
	svcs, err := s.Client().Services()
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs {
		for _, r := range svc.Reals {
			if r.Address == addr {
				return r
			}
		}
	}
	t.Fatalf("real server %s not listed", addr)
	return api.Real{}
}

// TestIPVSAddDestFromTrash is the reproduction: 12 keep-alive
// sessions over two real servers, `-d` one, `-a` it again a moment later.
// ip_vs_add_dest takes the dest back from the trash, so its six sessions
// forward again and it lists six active connections; before, it got a new
// ID and its sessions were dropped as dest_unavailable until they expired.
func TestIPVSAddDestFromTrash(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g", "-a -t 198.19.0.1:80 -r 198.18.0.12 -g")
	ports := keepAlive(t, s, 12)
	commands(t, s, "-d -t 198.19.0.1:80 -r 198.18.0.12")
	commands(t, s, "-a -t 198.19.0.1:80 -r 198.18.0.12 -g")
	if r := realOf(t, s, "198.18.0.12"); r.Active != 6 {
		t.Errorf("re-added server lists %d active connections, want its 6", r.Active)
	}
	resume(t, s, ports, "after -d and -a")

	// The same through -D and -A of the whole service.
	commands(t, s, "-D -t 198.19.0.1:80")
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.12 -g", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g")
	resume(t, s, ports, "after -D and -A")
}

// TestReloadRestoresTrashedDest: a reload that drops a real server and the
// next that restores it, as ip_vs_del_dest and ip_vs_add_dest do.
func TestReloadRestoresTrashedDest(t *testing.T) {
	s := controltest.Serve(t)
	full := &vs.Table{}
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr"}
	for _, a := range []string{"198.18.0.11", "198.18.0.12"} {
		svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr(a), Port: 80, Weight: 1})
	}
	if err := full.AddService(svc); err != nil {
		t.Fatal(err)
	}
	less := full.Clone()
	less.Services[0].Reals = less.Services[0].Reals[:1]
	load := func(tbl *vs.Table) {
		t.Helper()
		s.Reload = func() (*vs.Table, func(), error) { return tbl, nil, nil }
		if err := s.Client().Reload(); err != nil {
			t.Fatal(err)
		}
	}
	load(full)
	ports := keepAlive(t, s, 12)
	load(less)
	load(full)
	resume(t, s, ports, "after a reload without .12 and one with it")
}

// TestHealthOnFailureRemove: with HealthOptions.Remove (health.on_failure:
// remove) a failed real server leaves the dataplane and the listing, as
// keepalived without inhibit_on_failure deletes it; its connections wait
// in the trash and forward again, counted as its own, when it recovers.
func TestHealthOnFailureRemove(t *testing.T) {
	web := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}
	var reals []vs.Real
	for _, a := range []string{"198.18.0.11", "198.18.0.12"} {
		reals = append(reals, vs.Real{Addr: netip.MustParseAddr(a), Port: 80, Weight: 1})
	}
	d, srv, _ := healthServer(t, vs.Service{Key: web, Sched: "rr", Reals: reals})
	var mu sync.Mutex
	failing := map[netip.AddrPort]bool{}
	runHealth(t, srv, control.HealthOptions{Remove: true,
		Dial: func(_ context.Context, a netip.AddrPort) error {
			mu.Lock()
			defer mu.Unlock()
			if failing[a] {
				return errors.New("down")
			}
			return nil
		}})
	listed := func() map[string]int32 {
		m := map[string]int32{}
		for _, s := range srv.Services(d.Loads()) {
			for _, r := range s.Reals {
				m[r.Address] = r.Active
			}
		}
		return m
	}
	waitFor := func(want map[string]int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !maps.Equal(listed(), want); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("listed reals (active connections) %v, want %v", listed(), want)
			}
		}
	}
	var ports []uint16
	for i := range 12 {
		p := uint16(4000 + i)
		d.Feed(frame(t, p, true, 0))
		if d.Feed(frame(t, p, false, 100)) != dataplane.VerdictForward {
			t.Fatalf("session %d not forwarded", i)
		}
		ports = append(ports, p)
	}
	waitFor(map[string]int32{"198.18.0.11": 6, "198.18.0.12": 6})

	mu.Lock()
	failing[reals[1].AddrPort()] = true
	mu.Unlock()
	waitFor(map[string]int32{"198.18.0.11": 6})
	if w := d.Snapshot().Table.Services[0].Reals; len(w) != 1 || w[0].Weight != 1 {
		t.Fatalf("dataplane reals while .12 is down: %+v", w)
	}
	// While removed, its connections have no server (IPVS drops them).
	dropped := 0
	for _, p := range ports {
		if d.Feed(frame(t, p, false, 100)) != dataplane.VerdictForward {
			dropped++
		}
	}
	if dropped != 6 {
		t.Fatalf("%d sessions dropped while .12 was removed, want its 6", dropped)
	}

	mu.Lock()
	failing[reals[1].AddrPort()] = false
	mu.Unlock()
	waitFor(map[string]int32{"198.18.0.11": 6, "198.18.0.12": 6})
	for i, p := range ports {
		if d.Feed(frame(t, p, false, 100)) != dataplane.VerdictForward {
			t.Fatalf("session %d not forwarded after .12 recovered", i)
		}
	}
	if w := d.Snapshot().Table.Services[0].Reals; len(w) != 2 || w[1].Weight != 1 {
		t.Fatalf("dataplane reals after recovery: %+v", w)
	}
}

// TestRefusedReloadKeepsIDs is the issue's §2 scenario: a reload that drops
// a real server is refused late (a plain service collides with a
// firewall-mark group's port, found only when the keys are compiled); the
// next rebuild of the table in force, as a neighbour change triggers,
// must not give the untouched server a new ID, or its established
// sessions are dropped as dest_unavailable.
func TestRefusedReloadKeepsIDs(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g", "-a -t 198.19.0.1:80 -r 198.18.0.12 -g")
	ports := keepAlive(t, s, 12)
	bad := s.Server.Table()
	bad.Services[0].Reals = bad.Services[0].Reals[:1]
	bad.Marks = []vs.Mark{{Mark: 5, Matches: []vs.Match{{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), PortLo: 80, PortHi: 80}}}}
	if err := bad.AddService(vs.Service{Key: vs.Key{FWMark: 5}, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	s.Reload = func() (*vs.Table, func(), error) { return bad, nil, nil }
	if err := s.Client().Reload(); err == nil {
		t.Fatal("a reload whose service collides with a mark group was accepted")
	}
	// The neighbour-change rebuild republishes the table in force.
	if err := s.Director.Apply(s.Server.Table()); err != nil {
		t.Fatal(err)
	}
	resume(t, s, ports, "after a refused reload and a rebuild")
}

// TestIPVSUpdateDestZeroStats: a dest taken back from the trash into the
// same service keeps its traffic stats; one taken back into a re-created
// service starts them from 0 (__ip_vs_update_dest: ip_vs_zero_stats when
// dest->svc changes), while its connection counts carry over.
func TestIPVSUpdateDestZeroStats(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g")
	keepAlive(t, s, 3)
	if r := realOf(t, s, "198.18.0.11"); r.Stats.Conns != 3 || r.Active != 3 {
		t.Fatalf("setup: %+v", r)
	}
	commands(t, s, "-d -t 198.19.0.1:80 -r 198.18.0.11", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g")
	if r := realOf(t, s, "198.18.0.11"); r.Stats.Conns != 3 || r.Stats.InPkts != 6 || r.Active != 3 {
		t.Fatalf("after -d/-a in the same service: conns %d, inpkts %d, active %d; want 3, 6, 3", r.Stats.Conns, r.Stats.InPkts, r.Active)
	}
	// Each its own change, as separate afvsadm runs are (one -R batch
	// applies whole, so within it the service never goes away).
	commands(t, s, "-D -t 198.19.0.1:80")
	commands(t, s, "-A -t 198.19.0.1:80 -s rr")
	commands(t, s, "-a -t 198.19.0.1:80 -r 198.18.0.11 -g")
	if r := realOf(t, s, "198.18.0.11"); r.Stats.Conns != 0 || r.Stats.InPkts != 0 || r.Active != 3 {
		t.Fatalf("after -D/-A: conns %d, inpkts %d, active %d; want 0, 0, 3", r.Stats.Conns, r.Stats.InPkts, r.Active)
	}
	s.Director.Feed(frame(t, 5000, true, 0))
	s.Director.Feed(frame(t, 3000, false, 100)) // an old session, now counted again
	if r := realOf(t, s, "198.18.0.11"); r.Stats.Conns != 1 || r.Stats.InPkts != 2 || r.Active != 4 {
		t.Fatalf("after a new connection and a packet: conns %d, inpkts %d, active %d; want 1, 2, 4", r.Stats.Conns, r.Stats.InPkts, r.Active)
	}
	// -Z after the restart counts from then.
	commands(t, s, "-Z")
	s.Director.Feed(frame(t, 3001, false, 100))
	if r := realOf(t, s, "198.18.0.11"); r.Stats.Conns != 0 || r.Stats.InPkts != 1 {
		t.Fatalf("after -Z and a packet: conns %d, inpkts %d; want 0, 1", r.Stats.Conns, r.Stats.InPkts)
	}
}

// TestTrashKeepsPersistCounts: a persistent service's template holds its
// dest like a connection does, so the dest revived from the trash lists
// its template (ipvsadm --persistent-conn) and connections again, and a
// new connection of the same client follows the template to it.
func TestTrashKeepsPersistCounts(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr -p 300", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g", "-a -t 198.19.0.1:80 -r 198.18.0.12 -g")
	keepAlive(t, s, 4) // one client: one template, every connection on one server
	var on string
	for _, a := range []string{"198.18.0.11", "198.18.0.12"} {
		if r := realOf(t, s, a); r.Active == 4 && r.PersistConns == 1 {
			on = a
		}
	}
	if on == "" {
		t.Fatal("the four connections are not on one server with one template")
	}
	commands(t, s, "-d -t 198.19.0.1:80 -r "+on)
	commands(t, s, "-a -t 198.19.0.1:80 -r "+on+" -g")
	if r := realOf(t, s, on); r.Active != 4 || r.PersistConns != 1 {
		t.Fatalf("revived %s lists %d active and %d templates, want 4 and 1", on, r.Active, r.PersistConns)
	}
	s.Director.Feed(frame(t, 6000, true, 0))
	if r := realOf(t, s, on); r.Active != 5 {
		t.Fatalf("a new connection of the client did not follow its template to %s: %+v", on, r)
	}
}
