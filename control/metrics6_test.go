package control_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

// table6 holds the IPv6 shapes IPVS has: an IPv6 service with an IPv6
// real server and an IPv4 one behind a tunnel (6in4), an IPv6 real server
// whose name is longer than ipvsadm's column, and the IPv4 and IPv6
// firewall-mark services of the same mark, the IPv4 one with a tunnelled
// IPv6 real server (4in6).
func table6() *vs.Table {
	a := netip.MustParseAddr
	return &vs.Table{
		Services: []vs.Service{
			{Key: vs.Key{Proto: vs.TCP, Addr: a("2001:2::1"), Port: 80}, Sched: "rr", Persistent: true, Timeout: 300, Netmask: vs.PrefixMask(64, true),
				Reals: []vs.Real{
					{Addr: a("2001:2::11"), Port: 80, Fwd: vs.Route, Weight: 3},
					{Addr: a("198.18.0.12"), Port: 80, Fwd: vs.Tunnel, Weight: 1},
					{Addr: a("2001:2:0:ffff:ffff:ffff:ffff:ffff"), Port: 80, Fwd: vs.Route, Weight: 2},
				}},
			{Key: vs.Key{FWMark: 1}, Sched: "wlc", Netmask: vs.FullMask(false),
				Reals: []vs.Real{
					{Addr: a("198.18.0.13"), Fwd: vs.Route, Weight: 2},
					{Addr: a("2001:2::1111:2222:3333:4444"), Fwd: vs.Tunnel, Weight: 1},
				}},
			{Key: vs.Key{FWMark: 1, IPv6: true}, Sched: "wlc", Persistent: true, Timeout: 600, Netmask: vs.PrefixMask(48, true),
				Reals: []vs.Real{{Addr: a("2001:2::13"), Fwd: vs.Route, Weight: 4}}},
		},
		Marks: []vs.Mark{{Mark: 1, Matches: []vs.Match{
			{Proto: vs.TCP, Addr: a("198.19.0.1"), PortLo: 80, PortHi: 80},
			{Proto: vs.TCP, Addr: a("2001:2::1"), PortLo: 443, PortHi: 443},
		}}},
	}
}

// director6 is the in-memory director with an IPv6 table in force: the
// control plane's view of what the dataplane will hold once it forwards
// IPv6. Its snapshot is built by hand from table6 (the dataplane refuses
// to compile IPv6 yet), with dest IDs 1, 2, ... in the kernel's order, and
// its loads report 10*ID active and ID inactive connections per dest.
type director6 struct {
	*controltest.Director
	snap *dataplane.Snapshot
}

func newDirector6(t *testing.T) *director6 {
	t.Helper()
	d, err := controltest.NewDirector(4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	tbl := table6()
	snap := &dataplane.Snapshot{Table: tbl}
	id := uint32(1)
	for i, s := range tbl.Services {
		cs := dataplane.Service{Key: s.Key, ID: uint32(i + 1)}
		for range s.Reals {
			cs.Dests = append(cs.Dests, dataplane.Dest{ID: id})
			id++
		}
		snap.Services = append(snap.Services, cs)
	}
	return &director6{Director: d, snap: snap}
}

func (d *director6) Snapshot() *dataplane.Snapshot { return d.snap }
func (d *director6) Loads() control.Loads          { return loads6{} }

type loads6 struct{}

func (loads6) Active(id uint32) int32    { return int32(10 * id) }
func (loads6) Inactive(id uint32) int32  { return int32(id) }
func (loads6) Overloaded(id uint32) bool { return false }

// TestMetricsIPv6Labels: IPv6 services and real servers are labelled as
// ipvsadm prints them, the address in brackets ("tcp:[2001:2::1]:80",
// "[2001:2::11]:80"), and the IPv6 firewall-mark service apart from the
// IPv4 one of the same mark ("fwm:1:ipv6", "fwm:1"); without that the two
// collide and the scrape fails.
func TestMetricsIPv6Labels(t *testing.T) {
	d := newDirector6(t)
	srv := control.New(d, d.CT, table6(), nil, nil)
	rec := httptest.NewRecorder()
	control.MetricsHandler(srv, d).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d:\n%s", rec.Code, text)
	}
	// Dest IDs in kernel order (newest first): service 1's reals are
	// 1 = the long one, 2 = 198.18.0.12, 3 = 2001:2::11; FWM 1's are
	// 4 = 2001:2::1111:..., 5 = 198.18.0.13; FWM 1 IPv6's is 6.
	for _, line := range []string{
		`afvs_real_weight{real="[2001:2::11]:80",service="tcp:[2001:2::1]:80"} 3`,
		`afvs_real_weight{real="198.18.0.12:80",service="tcp:[2001:2::1]:80"} 1`,
		`afvs_real_weight{real="[2001:2:0:ffff:ffff:ffff:ffff:ffff]:80",service="tcp:[2001:2::1]:80"} 2`,
		`afvs_real_active_connections{real="[2001:2::11]:80",service="tcp:[2001:2::1]:80"} 30`,
		`afvs_real_inactive_connections{real="198.18.0.12:80",service="tcp:[2001:2::1]:80"} 2`,
		`afvs_real_weight{real="198.18.0.13:0",service="fwm:1"} 2`,
		`afvs_real_weight{real="[2001:2::1111:2222:3333:4444]:0",service="fwm:1"} 1`,
		`afvs_real_active_connections{real="[2001:2::1111:2222:3333:4444]:0",service="fwm:1"} 40`,
		`afvs_real_weight{real="[2001:2::13]:0",service="fwm:1:ipv6"} 4`,
		`afvs_real_active_connections{real="[2001:2::13]:0",service="fwm:1:ipv6"} 60`,
		`afvs_service_connections_total{service="tcp:[2001:2::1]:80"} 0`,
		`afvs_service_packets_total{direction="in",service="fwm:1:ipv6"} 0`,
		`afvs_real_bytes_total{direction="in",real="[2001:2::13]:0",service="fwm:1:ipv6"} 0`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	if strings.Contains(text, `service="tcp:2001`) || strings.Contains(text, `real="2001`) {
		t.Errorf("an IPv6 address without brackets in a label:\n%s", text)
	}
}

// TestIpvsadmListingIPv6API: the daemon's answers carry IPv6 services,
// -M 64 and mixed-family tunnel dests through the control API to
// afvsadm's listing and save byte for byte as ipvsadm 1.31 prints them:
// IPv6 names are not cut and push the columns right, the IPv6 real server
// of an IPv4 service too (ipvsadm cuts by the real server's own family,
// which the kernel's dump carries), and FWM 1 IPv6 is its own service,
// listed after FWM 1.
func TestIpvsadmListingIPv6API(t *testing.T) {
	d := newDirector6(t)
	srv := control.New(d, d.CT, table6(), nil, func(st *api.Status) { st.Table = d.TableStatus() })
	sock := filepath.Join(t.TempDir(), "afvs.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := control.NewHTTPServer(srv.Handler(d.Loads()), control.DefaultHTTPLimits)
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(l) }()
	t.Cleanup(func() { hs.Close(); <-done })
	snap, err := api.NewClient(sock).IpvsadmSnapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	write := func(args string) string {
		t.Helper()
		c, err := ipvsadm.Parse(strings.Fields(args))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := snap.Write(&b, c); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	// ipvs_cmp_dests compares addresses only within the service's
	// family, by the first 32 bits; ipvs_cmp_services puts FWM 1 (AF_INET)
	// before FWM 1 IPv6 and both after the TCP service.
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  [2001:2::1]:80 rr persistent 300 mask 64\n" +
		"  -> 198.18.0.12:80               Tunnel  1      20         2         \n" +
		"  -> [2001:2::11]:80              Route   3      30         3         \n" +
		"  -> [2001:2:0:ffff:ffff:ffff:ffff:ffff]:80 Route   2      10         1         \n" +
		"FWM  1 wlc\n" +
		"  -> 198.18.0.13:0                Route   2      50         5         \n" +
		"  -> [2001:2::1111:2222:3333:4444]:0 Tunnel  1      40         4         \n" +
		"FWM  1 IPv6 wlc persistent 600 mask 48\n" +
		"  -> [2001:2::13]:0               Route   4      60         6         \n"
	if got := write("-L -n"); got != want {
		t.Errorf("-L -n printed\n%s\nwant\n%s", got, want)
	}
	// One service, named as ipvsadm takes it: no version line.
	wantOne := "Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  [2001:2::1]:80 rr persistent 300 mask 64\n" +
		"  -> 198.18.0.12:80               Tunnel  1      20         2         \n" +
		"  -> [2001:2::11]:80              Route   3      30         3         \n" +
		"  -> [2001:2:0:ffff:ffff:ffff:ffff:ffff]:80 Route   2      10         1         \n"
	if got := write("-L -n -t [2001:2::1]:80"); got != wantOne {
		t.Errorf("-L -n -t [2001:2::1]:80 printed\n%s\nwant\n%s", got, wantOne)
	}
	if got, want := write("-L -n -f 1 -6"), "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"FWM  1 IPv6 wlc persistent 600 mask 48\n"+
		"  -> [2001:2::13]:0               Route   4      60         6         \n"; got != want {
		t.Errorf("-L -n -f 1 -6 printed\n%s\nwant\n%s", got, want)
	}
	// --thresholds and --persistent-conn: the IPv6 names push the
	// columns in the same way.
	if got := write("-L -n --persistent-conn"); !strings.Contains(got, "  -> [2001:2:0:ffff:ffff:ffff:ffff:ffff]:80 2         0           10         1         \n") ||
		!strings.Contains(got, "  -> [2001:2::1111:2222:3333:4444]:0 1         0           40         4         \n") {
		t.Errorf("-L -n --persistent-conn printed\n%s", got)
	}
	wantSave := "-A -t [2001:2::1]:80 -s rr -p 300 -M 64\n" +
		"-a -t [2001:2::1]:80 -r 198.18.0.12:80 -i -w 1 --tun-type ipip\n" +
		"-a -t [2001:2::1]:80 -r [2001:2::11]:80 -g -w 3\n" +
		"-a -t [2001:2::1]:80 -r [2001:2:0:ffff:ffff:ffff:ffff:ffff]:80 -g -w 2\n" +
		"-A -f 1 -s wlc\n" +
		"-a -f 1 -r 198.18.0.13:0 -g -w 2\n" +
		"-a -f 1 -r [2001:2::1111:2222:3333:4444]:0 -i -w 1 --tun-type ipip\n" +
		"-A -f 1 -6 -s wlc -p 600 -M 48\n" +
		"-a -f 1 -6 -r [2001:2::13]:0 -g -w 4\n"
	if got := write("-S -n"); got != wantSave {
		t.Errorf("-S -n printed\n%s\nwant\n%s", got, wantSave)
	}
}
