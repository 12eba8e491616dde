package control_test

import (
	"net/netip"
	"testing"

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
