package control_test

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

// picks feeds n SYNs from new client ports and returns the real server
// each connection went to, in order.
func picks(t *testing.T, s *controltest.Served, sport uint16, n int) []string {
	t.Helper()
	for i := range n {
		s.Director.Feed(frame(t, sport+uint16(i), true, 0))
	}
	conns, err := s.Client().Conns()
	if err != nil {
		t.Fatal(err)
	}
	byClient := map[string]string{}
	for _, c := range conns {
		byClient[c.Client] = strings.TrimSuffix(c.Dest, ":80")
	}
	var out []string
	for i := range n {
		out = append(out, byClient["198.18.0.10:"+strconv.Itoa(int(sport)+i)])
	}
	return out
}

// nosortDests lists the service's real servers as afvsadm -L -n --nosort
// prints them: the daemon's order, unsorted.
func nosortDests(t *testing.T, s *controltest.Served) string {
	t.Helper()
	snap, err := s.Client().IpvsadmSnapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ipvsadm.Parse(strings.Fields("-L -n --nosort"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.Write(&b, c); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "->" && f[1] != "RemoteAddress:Port" {
			out = append(out, strings.TrimSuffix(f[1], ":80"))
		}
	}
	return strings.Join(out, " ")
}

// TestIPVSUpdateDestHeadInsert: __ip_vs_update_dest links each new dest at
// the head of svc->destinations, so rr on a fresh service with A, B, C, D
// added in that order picks D, C, B, A, and the netlink dump that ipvsadm
// --nosort prints lists them in that order too. An edit (-e) keeps a
// dest's place; deleting a dest and adding it again puts it at the head.
func TestIPVSUpdateDestHeadInsert(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr",
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1",
		"-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1",
		"-a -t 198.19.0.1:80 -r 198.18.0.13 -g -w 1",
		"-a -t 198.19.0.1:80 -r 198.18.0.14 -g -w 1")
	if got, want := strings.Join(picks(t, s, 1000, 4), " "), "198.18.0.14 198.18.0.13 198.18.0.12 198.18.0.11"; got != want {
		t.Fatalf("rr picked %s, want %s (the kernel's list is newest first)", got, want)
	}
	if got, want := nosortDests(t, s), "198.18.0.14 198.18.0.13 198.18.0.12 198.18.0.11"; got != want {
		t.Fatalf("-L -n --nosort lists %s, want %s", got, want)
	}
	// -e keeps .12 where it is; -d and -a move .13 to the head.
	commands(t, s, "-e -t 198.19.0.1:80 -r 198.18.0.12 -g -w 2",
		"-d -t 198.19.0.1:80 -r 198.18.0.13",
		"-a -t 198.19.0.1:80 -r 198.18.0.13 -g -w 1")
	if got, want := nosortDests(t, s), "198.18.0.13 198.18.0.14 198.18.0.12 198.18.0.11"; got != want {
		t.Fatalf("after -e .12, -d .13, -a .13: -L -n --nosort lists %s, want %s", got, want)
	}
}

// TestIPVSUpdateDestReloadKeepsPlace: a reload that keeps a real server
// does not re-add it, so it keeps its place in the kernel's list whatever
// the order of the new file; real servers new to the service go to the
// head, in file order as if each were added with -a.
func TestIPVSUpdateDestReloadKeepsPlace(t *testing.T) {
	s := controltest.Serve(t)
	table := func(lasts ...byte) *vs.Table {
		svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr"}
		for _, l := range lasts {
			svc.Reals = append(svc.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, l}), Port: 80, Weight: 1})
		}
		return &vs.Table{Services: []vs.Service{svc}}
	}
	s.Reload = func() (*vs.Table, func(), error) { return table(11, 12, 13), nil, nil }
	if err := s.Client().Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := nosortDests(t, s), "198.18.0.13 198.18.0.12 198.18.0.11"; got != want {
		t.Fatalf("first load: %s, want %s", got, want)
	}
	// The file now lists .13 first, drops .12 and adds .15 and .14.
	s.Reload = func() (*vs.Table, func(), error) { return table(13, 15, 11, 14), nil, nil }
	if err := s.Client().Reload(); err != nil {
		t.Fatal(err)
	}
	if got, want := nosortDests(t, s), "198.18.0.14 198.18.0.15 198.18.0.13 198.18.0.11"; got != want {
		t.Fatalf("after reload: %s, want %s", got, want)
	}
	if got, want := strings.Join(picks(t, s, 2000, 4), " "), "198.18.0.14 198.18.0.15 198.18.0.13 198.18.0.11"; got != want {
		t.Fatalf("rr after reload picked %s, want %s", got, want)
	}
}

// TestIPVSDHReassignHeadFirst: ip_vs_dh_reassign deals the 256 buckets
// round-robin starting at the head of svc->destinations, the dest added
// last. 198.19.0.1 hashes to bucket 67 (hash_32(0xC6130001, 8)); with .11
// then .12 added the list is .12, .11, so odd buckets belong to .11.
func TestIPVSDHReassignHeadFirst(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s dh",
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1",
		"-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1")
	if got := picks(t, s, 3000, 2); strings.Join(got, " ") != "198.18.0.11 198.18.0.11" {
		t.Fatalf("dh sent 198.19.0.1 to %v, want 198.18.0.11 (bucket 67 of list .12, .11)", got)
	}
}
