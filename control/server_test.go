package control_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

func frame(t *testing.T, sport uint16, syn bool, payload int) []byte {
	t.Helper()
	flags := testsupport.ACK
	if syn {
		flags = testsupport.SYN
	}
	return testsupport.Build(t, testsupport.Eth(net.HardwareAddr{2, 0, 0, 0, 0, 0x10}, controltest.DirectorMAC[:]),
		testsupport.IPv4(netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.19.0.1")),
		testsupport.TCP(sport, 80, flags), testsupport.Payload(payload))
}

func commands(t *testing.T, s *controltest.Served, lines ...string) {
	t.Helper()
	var cmds [][]string
	for _, l := range lines {
		cmds = append(cmds, strings.Fields(l))
	}
	if err := s.Client().Commands(cmds); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsLocal: the local node's work is in /metrics and
// /v1/status: a connection to the director's own address is one flow and
// one packet delivered to its stack.
func TestMetricsLocal(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.2 -g -w 1")
	s.Director.Feed(frame(t, 1000, true, 0))
	rec := httptest.NewRecorder()
	control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, line := range []string{`afvs_local_total{event="delivered"} 1`, `afvs_local_total{event="flows"} 1`, `afvs_local_total{event="map_full"} 0`,
		`afvs_drops_total{reason="local_deliver"} 0`, `afvs_drops_total{reason="no_egress"} 0`} {
		if !strings.Contains(string(body), "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	st, err := s.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Local != (api.LocalStatus{Delivered: 1, Flows: 1}) {
		t.Errorf("status local %+v, want 1 delivered, 1 flow", st.Local)
	}
	if n := len(s.Director.Host().LocalRecv()); n != 1 {
		t.Errorf("the director's stack got %d packets, want 1", n)
	}
}

func TestMetrics(t *testing.T) {
	s := controltest.Serve(t)
	// Added .12 then .11: the kernel's list is newest first, so rr starts at .11.
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.12 -i -w 1", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 3")
	commands(t, s, "--start-daemon master --mcast-interface lo")
	for i := range 3 {
		s.Director.Feed(frame(t, uint16(1000+i), true, 0))
		s.Director.Feed(frame(t, uint16(1000+i), false, 100))
	}
	s.Director.Feed(frame(t, 2000, false, 10)) // no connection, not a SYN: dropped
	martian := frame(t, 2001, true, 0)         // a SYN from loopback: dropped before the table
	martian[14+12] = 127
	martian[14+10], martian[14+11] = 0, 0
	sum := ^header.Checksum(martian[14:34], 0)
	martian[14+10], martian[14+11] = byte(sum>>8), byte(sum)
	s.Director.Feed(martian)
	rec := httptest.NewRecorder()
	control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	if rec.Code != 200 {
		t.Fatalf("/metrics answered %d:\n%s", rec.Code, text)
	}
	for _, name := range []string{"afvs_service_connections_total", "afvs_service_packets_total", "afvs_service_bytes_total",
		"afvs_real_connections_total", "afvs_real_packets_total", "afvs_real_bytes_total", "afvs_real_active_connections",
		"afvs_real_inactive_connections", "afvs_real_weight", "afvs_conntrack_entries", "afvs_conntrack_templates",
		"afvs_conntrack_capacity", "afvs_conntrack_memory_bytes", "afvs_conntrack_evictions_total", "afvs_conntrack_refused_total", "afvs_conntrack_expired_total",
		"afvs_drops_total", "afvs_icmp_sent_total", "afvs_fragmented_total", "afvs_queue_rx_packets_total", "afvs_queue_tx_packets_total", "afvs_queue_tx_ring_full_total",
		"afvs_queue_no_free_frame_total", "afvs_queue_port_errors_total", "afvs_build_info",
		"afvs_sync_messages_total", "afvs_sync_entries_total", "afvs_sync_installed_total", "afvs_sync_drops_total", "afvs_sync_daemon_running", "afvs_sync_daemon_info"} {
		if !regexp.MustCompile(`(?m)^# TYPE ` + name + ` (counter|gauge)$`).MatchString(text) {
			t.Errorf("metric %s missing", name)
		}
	}
	// rr over two servers: connections 1, 2, 3 go to .11, .12, .11.
	for _, line := range []string{
		`afvs_service_connections_total{service="tcp:198.19.0.1:80"} 3`,
		`afvs_service_packets_total{direction="in",service="tcp:198.19.0.1:80"} 6`,
		`afvs_service_packets_total{direction="out",service="tcp:198.19.0.1:80"} 0`,
		`afvs_real_connections_total{real="198.18.0.11:80",service="tcp:198.19.0.1:80"} 2`,
		`afvs_real_connections_total{real="198.18.0.12:80",service="tcp:198.19.0.1:80"} 1`,
		`afvs_real_active_connections{real="198.18.0.11:80",service="tcp:198.19.0.1:80"} 2`,
		`afvs_real_weight{real="198.18.0.11:80",service="tcp:198.19.0.1:80"} 3`,
		`afvs_real_weight{real="198.18.0.12:80",service="tcp:198.19.0.1:80"} 1`,
		`afvs_conntrack_entries 3`,
		`afvs_conntrack_capacity 4096`,
		fmt.Sprintf("afvs_conntrack_memory_bytes %d", s.Director.CT.Bytes()),
		`afvs_queue_rx_packets_total{dev="fake0",queue="0"} 8`,
		`afvs_drops_total{reason="no_connection"} 1`,
		`afvs_drops_total{reason="martian_source"} 1`,
		`afvs_drops_total{reason="ttl_zero"} 0`,
		`afvs_drops_total{reason="bad_ip_options"} 0`,
		`afvs_drops_total{reason="no_service"} 0`,
		`afvs_sync_daemon_running{state="master"} 1`,
		`afvs_sync_daemon_running{state="backup"} 0`,
		`afvs_sync_daemon_info{mcast_group="224.0.0.81",mcast_interface="lo",mcast_port="8848",mcast_ttl="1",state="master",sync_maxlen="1472",syncid="0"} 1`,
		`afvs_sync_messages_total{direction="received"} 0`,
		`afvs_sync_drops_total{reason="wrong_syncid"} 0`,
		`afvs_sync_drops_total{reason="queue_full"} 0`,
		`afvs_sync_drops_total{reason="unknown_dest"} 0`,
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	// Bytes are IP-layer bytes, as IPVS counts them (40 + 140 in, no
	// tunnel header), and nothing is counted out: with DR and TUN the
	// replies do not pass the director (ip_vs_out_stats never runs).
	in := regexp.MustCompile(`afvs_real_bytes_total\{direction="in",real="198.18.0.12:80",service="tcp:198.19.0.1:80"\} (\d+)`).FindStringSubmatch(text)
	out := regexp.MustCompile(`afvs_real_bytes_total\{direction="out",real="198.18.0.12:80",service="tcp:198.19.0.1:80"\} (\d+)`).FindStringSubmatch(text)
	if in == nil || out == nil || in[1] != "180" || out[1] != "0" {
		t.Errorf("tunnel real bytes in %v out %v, want 180 and 0", in, out)
	}
	if !regexp.MustCompile(`afvs_build_info\{goversion="go[^"]+",version="` + regexp.QuoteMeta(api.Version) + `"\} 1`).MatchString(text) {
		t.Error("build info missing or wrong")
	}
}

func TestCommandsAreAtomic(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1")
	before := s.Server.Table()
	n := s.Director.Applied()
	err := s.Client().Commands([][]string{
		strings.Fields("-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1"),
		strings.Fields("--set 10 10 10"),
		strings.Fields("-Z"),
		strings.Fields("-D -t 198.19.0.1:80"),
		strings.Fields("-a -t 198.19.0.1:80 -r 198.18.0.13 -g -w 1"), // service just deleted
	})
	if err == nil || !strings.Contains(err.Error(), "command 5: Service not defined") {
		t.Fatalf("batch with a bad fifth command: %v", err)
	}
	if got := s.Server.Table(); !equalTables(got, before) {
		t.Errorf("table changed: %+v, was %+v", got, before)
	}
	if s.Director.Applied() != n {
		t.Error("the dataplane saw a table from a refused batch")
	}
	if to, _ := s.Client().Timeouts(); to != (api.Timeouts{TCP: 900, TCPFin: 120, UDP: 300}) {
		t.Errorf("--set of a refused batch took effect: %+v", to)
	}
}

// TestSyncDaemonCommands: --start-daemon and --stop-daemon drive the
// sync daemon; one in a batch with table changes is refused whole, and
// the refusal changes nothing.
func TestSyncDaemonCommands(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr")
	before := s.Server.Table()
	for _, line := range []string{"--start-daemon master --mcast-interface lo --syncid 3", "--stop-daemon backup"} {
		err := s.Client().Commands([][]string{
			strings.Fields("-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1"),
			strings.Fields(line),
		})
		if err == nil || !strings.Contains(err.Error(), "a sync daemon command must be alone in its batch") ||
			!strings.Contains(err.Error(), "command 2 (--"+strings.Fields(line)[0][2:]+" "+strings.Fields(line)[1]+")") {
			t.Errorf("%s: %v", line, err)
		}
	}
	if got := s.Server.Table(); !equalTables(got, before) {
		t.Errorf("a refused batch changed the table: %+v", got)
	}
	if len(s.Sync.Daemons()) != 0 {
		t.Errorf("a refused batch started %v", s.Sync.Daemons())
	}
	commands(t, s, "--start-daemon master --mcast-interface lo --syncid 3")
	st, err := s.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	want := api.SyncDaemon{State: "master", Interface: "lo", SyncID: 3, MaxLen: 1472, Group: "224.0.0.81", Port: 8848, TTL: 1}
	if len(st.Sync.Daemons) != 1 || st.Sync.Daemons[0] != want {
		t.Errorf("status sync daemons %+v, want [%+v]", st.Sync.Daemons, want)
	}
	if err := s.Client().Commands([][]string{strings.Fields("--start-daemon master --mcast-interface lo")}); err == nil || err.Error() != "Daemon has already run" {
		t.Errorf("second master: %v", err)
	}
	commands(t, s, "--stop-daemon master")
	if err := s.Client().Commands([][]string{strings.Fields("--stop-daemon master")}); err == nil || err.Error() != "No daemon is running" {
		t.Errorf("stop again: %v", err)
	}
}

// TestSyncDaemonIPv6Group: a sync daemon on an IPv6 group shows in the
// status with the values the kernel would fill in (maxlen 1500 less the
// 48 bytes of IPv6 and UDP headers) and in Prometheus's
// afvs_sync_daemon_info; a group that never leaves the host is refused,
// naming it, and changes nothing.
func TestSyncDaemonIPv6Group(t *testing.T) {
	// Linux routes no IPv6 multicast out of lo, so the daemon here has
	// no sockets; syncd's tests run the sockets in namespaces.
	s := controltest.ServeWithSync(t, &controltest.Sync{MTU: 65536})
	commands(t, s, "--start-daemon master --mcast-interface lo --syncid 3 --mcast-group ff02::8848 --mcast-ttl 2")
	if err := s.Client().Commands([][]string{strings.Fields("--start-daemon backup --mcast-interface lo --mcast-group ff01::8848")}); err == nil ||
		!strings.Contains(err.Error(), "mcast-group ff01::8848: multicast scope 1") {
		t.Errorf("interface-local group: %v", err)
	}
	st, err := s.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	want := api.SyncDaemon{State: "master", Interface: "lo", SyncID: 3, MaxLen: 1452, Group: "ff02::8848", Port: 8848, TTL: 2}
	if len(st.Sync.Daemons) != 1 || st.Sync.Daemons[0] != want {
		t.Errorf("status sync daemons %+v, want [%+v]", st.Sync.Daemons, want)
	}
	rec := httptest.NewRecorder()
	control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	line := `afvs_sync_daemon_info{mcast_group="ff02::8848",mcast_interface="lo",mcast_port="8848",mcast_ttl="2",state="master",sync_maxlen="1452",syncid="3"} 1`
	if text := string(body); !strings.Contains(text, "\n"+line+"\n") || strings.Contains(text, `afvs_sync_daemon_info{mcast_group="ff01`) {
		t.Errorf("metrics lack %q or show the refused backup:\n%s", line, text)
	}
}

func equalTables(a, b *vs.Table) bool {
	if len(a.Services) != len(b.Services) {
		return false
	}
	for i := range a.Services {
		x, y := a.Services[i], b.Services[i]
		if x.Key != y.Key || x.Sched != y.Sched || len(x.Reals) != len(y.Reals) {
			return false
		}
		for j := range x.Reals {
			if x.Reals[j] != y.Reals[j] {
				return false
			}
		}
	}
	return true
}

func TestReload(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1")
	good := &vs.Table{}
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "wrr", Reals: []vs.Real{
		{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Weight: 5}, {Addr: netip.MustParseAddr("198.18.0.12"), Port: 80, Weight: 1}}}
	if err := good.AddService(svc); err != nil {
		t.Fatal(err)
	}
	commits := 0
	commit := func() { commits++ }
	s.Reload = func() (*vs.Table, func(), error) { return good, commit, nil }
	if err := s.Client().Reload(); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	if commits != 1 {
		t.Fatalf("good reload committed %d times", commits)
	}
	if got := s.Server.Table(); !equalTables(got, good) {
		t.Fatalf("after reload the table is %+v", got)
	}
	for _, tc := range []struct {
		name   string
		reload func() (*vs.Table, func(), error)
		want   string
	}{
		{"bad file", func() (*vs.Table, func(), error) {
			return nil, commit, errors.New("services[0].scheduler: \"nosuch\": unknown")
		}, "nosuch"},
		{"inconsistent table", func() (*vs.Table, func(), error) {
			bad := good.Clone()
			bad.Services = append(bad.Services, bad.Services[0])
			return bad, commit, nil
		}, "Service already exists"},
		{"dataplane refuses", func() (*vs.Table, func(), error) {
			s.Director.RefuseApply(errors.New("Memory allocation problem"))
			return good, commit, nil
		}, "Memory allocation problem"},
		{"no table", func() (*vs.Table, func(), error) { return nil, commit, nil }, "no table"},
	} {
		s.Reload = tc.reload
		n := s.Director.Applied()
		err := s.Client().Reload()
		if err == nil || !strings.Contains(err.Error(), "old configuration still running") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload answered %v", tc.name, err)
		}
		if got := s.Server.Table(); !equalTables(got, good) || s.Director.Applied() != n {
			t.Errorf("%s: a failed reload changed the table", tc.name)
		}
		if commits != 1 {
			t.Errorf("%s: a failed reload committed the rest of its configuration", tc.name)
		}
		s.Director.RefuseApply(nil)
	}
}

// TestConcurrentUse drives the server as the daemon does: a worker
// counting frames while commands, reloads, listings, scrapes and
// estimator samples run. Run with -race.
func TestConcurrentUse(t *testing.T) {
	s := controltest.Serve(t)
	commands(t, s, "-A -t 198.19.0.1:80 -s wlc", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1", "-a -t 198.19.0.1:80 -r 198.18.0.12 -g -w 1")
	s.Reload = func() (*vs.Table, func(), error) { return s.Server.Table(), nil, nil }
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = frame(t, uint16(3000+i), true, 0)
	}
	stop := make(chan struct{})
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	loop := func(fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var fed atomic.Int64
	loop(func(i int) error { s.Director.Feed(frames[i%len(frames)]); fed.Add(1); return nil })
	loop(func(i int) error {
		return s.Client().Commands([][]string{strings.Fields(fmt.Sprintf("-e -t 198.19.0.1:80 -r 198.18.0.12 -g -w %d", i%5))})
	})
	loop(func(i int) error { return s.Client().Reload() })
	loop(func(i int) error { s.Server.SampleRates(); _, err := s.Client().Services(); return err })
	loop(func(i int) error {
		rec := httptest.NewRecorder()
		control.MetricsHandler(s.Server, s.Director).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			return fmt.Errorf("/metrics answered %d", rec.Code)
		}
		_, err := s.Client().Conns()
		return err
	})
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	svcs, err := s.Client().Services()
	if err != nil || len(svcs) != 1 || len(svcs[0].Reals) != 2 {
		t.Fatalf("after the storm: %+v, %v", svcs, err)
	}
	if got := svcs[0].Stats.InPkts; got != uint64(fed.Load()) {
		t.Errorf("service counted %d packets, %d were fed", got, fed.Load())
	}
}

// TestListingShowsUnreachable: a real server the director has no route to
// is accepted and listed as unreachable with the reason; one on an
// address of the director itself is the local node: listed as Local, as
// ipvsadm lists IP_VS_CONN_F_LOCALNODE, and saved with -g.
func TestListingShowsUnreachable(t *testing.T) {
	s := controltest.Serve(t)
	s.Director.Host().DelRoute(netip.MustParsePrefix("0.0.0.0/0"))
	commands(t, s, "-A -t 198.19.0.1:80 -s rr", "-a -t 198.19.0.1:80 -r 198.18.0.11 -g -w 1", "-a -t 198.19.0.1:80 -r 198.19.9.9 -g -w 1",
		"-a -t 198.19.0.1:80 -r 198.18.0.2 -i -w 1")
	svcs, err := s.Client().Services()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range svcs[0].Reals {
		got[r.Address] = fmt.Sprint(r.Forward, " ", r.Reachable, " ", r.Status)
	}
	if got["198.18.0.11"] != "Route true ok" || !strings.HasPrefix(got["198.19.9.9"], "Route false unreachable: no route to 198.19.9.9") ||
		got["198.18.0.2"] != "Local true ok: local node" {
		t.Errorf("listing says %q", got)
	}
	snap, err := s.Client().IpvsadmSnapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	var list, save strings.Builder
	if err := snap.WriteList(&list, ipvsadm.ListOptions{Numeric: true}); err != nil {
		t.Fatal(err)
	}
	if err := snap.WriteSave(&save); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.String(), "  -> 198.18.0.2:80                Local   1      0          0         \n") {
		t.Errorf("afvsadm -L -n:\n%s", list.String())
	}
	if !strings.Contains(save.String(), "-a -t 198.19.0.1:80 -r 198.18.0.2:80 -g -w 1\n") {
		t.Errorf("afvsadm -S -n:\n%s", save.String())
	}
}

// TestStatusShowsPollMode: /v1/status says each worker's poll mode, and a
// change of mode shows at once.
func TestStatusShowsPollMode(t *testing.T) {
	s := controltest.Serve(t)
	st, err := s.Client().Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Workers) != 1 || st.Workers[0].Poll != "adaptive spin=50µs" || st.Workers[0].BusyPoll != "" {
		t.Fatalf("workers %+v: want one, polling adaptive spin=50µs, no busy-poll options on the in-memory port", st.Workers)
	}
	if err := s.Director.SetPoll(director.PollConfig{Mode: director.PollSleep}); err != nil {
		t.Fatal(err)
	}
	if st := s.Server.Status(); st.Workers[0].Poll != "sleep" {
		t.Errorf("after SetPoll(sleep) the status says %q", st.Workers[0].Poll)
	}
}
