package sim

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestIPv6Trace replays IPv6 clients against an IPv6 sh service: every
// new connection is a decision line with the IPv6 client and VIP as the trace wrote them and
// the real server as [addr]:port, each client keeps its real server, and
// the server is the one sh's IPv6 hashing picks for the client's address.
func TestIPv6Trace(t *testing.T) {
	vip := netip.MustParseAddr("2001:2::1")
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "sh"}
	for i := 1; i <= 3; i++ {
		svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr(fmt.Sprintf("2001:2::%x", 0x10+i)), Port: 80, Weight: 1})
	}
	tbl := &vs.Table{}
	if err := tbl.AddService(svc); err != nil {
		t.Fatal(err)
	}
	var trace strings.Builder
	clients := []netip.Addr{}
	for i := range 24 {
		clients = append(clients, netip.MustParseAddr(fmt.Sprintf("2001:2:0:64::%x", 0x100+i*37)))
	}
	for round := range 2 {
		for i, c := range clients {
			fmt.Fprintf(&trace, "%d,tcp,%s,%d,%s,80,S\n", round*100+i, c, 40000+round, vip)
		}
	}
	var out bytes.Buffer
	sum, err := Run(tbl, strings.NewReader(trace.String()), &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Conns != 2*len(clients) {
		t.Fatalf("%d new connections, want %d:\n%s", sum.Conns, 2*len(clients), out.String())
	}
	// sh over the dests in the kernel's order, as the director builds it.
	reals := sched.KernelOrder(svc.Reals)
	dests := make([]sched.Dest, len(reals))
	for i, r := range reals {
		dests[i] = sched.Dest{ID: uint32(i + 1), Addr: r.Addr.As16(), Port: r.Port, Weight: r.Weight}
	}
	sh, err := sched.New("sh", dests, 0, sched.NewLoads(8), sched.Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := map[netip.Addr]string{}
	used := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 7 || f[1] != "tcp" || f[4] != "2001:2::1" || f[5] != "80" {
			t.Fatalf("decision line %q", line)
		}
		c, err := netip.ParseAddr(f[2])
		if err != nil || !c.Is6() {
			t.Fatalf("decision line %q: client %q", line, f[2])
		}
		if prev, ok := first[c]; ok && prev != f[6] {
			t.Errorf("client %s went to %s, then %s", c, prev, f[6])
		}
		first[c] = f[6]
		used[f[6]] = true
		j := sh.Schedule(&sched.Flow{Proto: 6, CAddr: c.As16(), CPort: 40000, VAddr: vip.As16(), VPort: 80})
		if j < 0 || reals[j].AddrPort().String() != f[6] {
			t.Errorf("client %s: the simulator chose %s, sh over IPv6 picks %d", c, f[6], j)
		}
	}
	if len(used) < 2 {
		t.Errorf("sh sent %d IPv6 clients to %d real server(s): %v", len(clients), len(used), used)
	}
}

// TestSummaryIPv6Columns: a service whose real servers have IPv6 names
// longer than the column widens the column, so every row's figures line
// up under the headings; an IPv4 service keeps the usual width.
func TestSummaryIPv6Columns(t *testing.T) {
	sum := &Summary{Services: []ServiceSummary{
		{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 443}, Sched: "mh", Servers: []ServerSummary{
			{Addr: netip.MustParseAddrPort("[2001:2:0:ffff:ffff:ffff:ffff:ffff]:443"), Weight: 1, Present: true, Conns: 5, Share: 0.5, WeightShare: 0.5},
			{Addr: netip.MustParseAddrPort("[2001:2::11]:443"), Weight: 1, Present: true, Conns: 5, Share: 0.5, WeightShare: 0.5},
		}},
		{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr", Servers: []ServerSummary{
			{Addr: netip.MustParseAddrPort("198.18.1.1:80"), Weight: 1, Present: true, Conns: 1, Share: 1, WeightShare: 1},
		}},
	}}
	var b bytes.Buffer
	if err := sum.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	var head, rows []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "  real server"):
			head = append(head, l)
		case strings.HasPrefix(l, "  [") || strings.HasPrefix(l, "  198."):
			rows = append(rows, l)
		}
	}
	if len(head) != 2 || len(rows) != 3 {
		t.Fatalf("summary:\n%s", b.String())
	}
	// Each row ends where its heading ends: the columns are aligned.
	for i, r := range rows {
		h := head[0]
		if i == 2 {
			h = head[1]
		}
		if len(r) != len(h) {
			t.Errorf("row %q does not line up under %q", r, h)
		}
	}
	if w := strings.Index(head[1], "weight"); w != 2+22+1+1 {
		t.Errorf("IPv4 service's heading %q: weight column at %d, want the usual %d", head[1], w, 26)
	}
}
