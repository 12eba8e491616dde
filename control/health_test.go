package control_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

func TestHealthQuiescesAndRestores(t *testing.T) {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "wrr"}
	for i, w := range []int32{1, 2} {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 80, Weight: w})
	}
	d, srv, tbl := healthServer(t, s)
	var mu sync.Mutex
	failing := map[netip.AddrPort]bool{}
	var events []string
	dial := func(ctx context.Context, a netip.AddrPort) error {
		mu.Lock()
		defer mu.Unlock()
		if failing[a] {
			return errors.New("connection refused")
		}
		return nil
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 2, Fall: 3, Dial: dial,
			OnChange: func(a netip.AddrPort, up bool) {
				mu.Lock()
				events = append(events, a.String()+map[bool]string{true: " up", false: " down"}[up])
				mu.Unlock()
			}}, stop)
		close(done)
	}()
	defer func() { close(stop); <-done }()
	rs2 := netip.MustParseAddrPort("198.18.0.12:80")
	weightOf := func() int32 {
		for _, r := range d.Snapshot().Table.Services[0].Reals {
			if r.AddrPort() == rs2 {
				return r.Weight
			}
		}
		return -1
	}
	wait := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for weightOf() != want {
			if time.Now().After(deadline) {
				t.Fatalf("dataplane weight of %s is %d, want %d (events %v)", rs2, weightOf(), want, events)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	mu.Lock()
	failing[rs2] = true
	mu.Unlock()
	wait(0)
	if srv.Up(&tbl.Services[0], &tbl.Services[0].Reals[1]) {
		t.Fatal("Up reports a quiesced server as up")
	}
	// The configured table keeps the weight; only the dataplane sees 0.
	if w := srv.Table().Services[0].Reals[1].Weight; w != 2 {
		t.Fatalf("configured weight changed to %d", w)
	}
	mu.Lock()
	failing[rs2] = false
	mu.Unlock()
	wait(2)
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0] != "198.18.0.12:80 down" || events[1] != "198.18.0.12:80 up" {
		t.Fatalf("events %v", events)
	}
}

func TestHTTPHealthCheck(t *testing.T) {
	// The check only needs the real server's address and port; a loopback
	// HTTP server stands in for it.
	addr, setStatus := healthzServer(t, false)
	check := control.HTTPCheck("/healthz", 200)
	if err := check(context.Background(), addr); err != nil {
		t.Fatalf("healthy server failed: %v", err)
	}
	setStatus(503)
	if err := check(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "status 503, want 200") {
		t.Fatalf("503 passed or unclear: %v", err)
	}
	if err := control.HTTPCheck("/other", 200)(context.Background(), addr); err == nil {
		t.Fatal("404 passed")
	}
}

// TestHTTPSCheck checks the TLS variant against a server with a
// self-signed certificate, which keepalived's SSL_GET would also accept.
func TestHTTPSCheck(t *testing.T) {
	addr, setStatus := healthzServer(t, true)
	check := control.HTTPSCheck("/healthz", 200)
	if err := check(context.Background(), addr); err != nil {
		t.Fatalf("healthy TLS server failed: %v", err)
	}
	setStatus(500)
	if err := check(context.Background(), addr); err == nil || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("500 passed or unclear: %v", err)
	}
	// Plain HTTP to a TLS port fails.
	if err := control.HTTPCheck("/healthz", 200)(context.Background(), addr); err == nil {
		t.Fatal("plain HTTP to a TLS server passed")
	}
}

// healthzServer runs a loopback HTTP (or, with useTLS, HTTPS) server that
// answers /healthz with a status the test sets (200 at first) and
// anything else with 404.
func healthzServer(t *testing.T, useTLS bool) (netip.AddrPort, func(int)) {
	var mu sync.Mutex
	status := 200
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthz" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(status)
	}))
	if useTLS {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return netip.MustParseAddrPort(ts.Listener.Addr().String()), func(s int) {
		mu.Lock()
		status = s
		mu.Unlock()
	}
}

// TestUDPCheck runs keepalived's UDP_CHECK semantics on loopback: a port
// with a listener passes (silence is not failure), a closed port fails on
// the ICMP port-unreachable.
func TestUDPCheck(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	open := l.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := control.UDPCheck(ctx, open); err != nil {
		t.Fatalf("a silent UDP listener failed: %v", err)
	}
	l.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := control.UDPCheck(ctx, open); err == nil {
		t.Fatal("a closed UDP port passed")
	}
}

// TestHealthChecksByProtocol: a real server behind a TCP and a UDP service
// is checked once per protocol, each with its own check, and a failure
// quiesces it only in the service of that protocol. A port-0 real server
// has no port to check and stays up.
func TestHealthChecksByProtocol(t *testing.T) {
	rs := netip.MustParseAddr("198.18.0.11")
	var svcs []vs.Service
	for _, k := range []vs.Key{
		{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 53},
		{Proto: vs.UDP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 53},
	} {
		svcs = append(svcs, vs.Service{Key: k, Sched: "rr", Reals: []vs.Real{{Addr: rs, Port: 53, Weight: 1}}})
	}
	d, srv, tbl := healthServer(t, append(svcs, portZeroService())...)
	rec := &recorder{calls: map[string]int{}}
	runHealth(t, srv, control.HealthOptions{Dial: rec.check("tcp", false), UDPDial: rec.check("udp", true)})
	weights := func() [3]int32 {
		var w [3]int32
		for i, s := range d.Snapshot().Table.Services {
			w[i] = s.Reals[0].Weight
		}
		return w
	}
	for deadline := time.Now().Add(5 * time.Second); weights() != [3]int32{1, 0, 1}; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("weights %v, want the UDP service's server quiesced only", weights())
		}
	}
	calls := rec.snapshot()
	if calls["tcp 198.18.0.11:53"] == 0 || calls["udp 198.18.0.11:53"] == 0 {
		t.Fatalf("checks made: %v", calls)
	}
	for k := range calls {
		if strings.Contains(k, "198.18.0.12") {
			t.Fatalf("a port-0 real server was checked: %v", calls)
		}
	}
	if !srv.Up(&tbl.Services[0], &tbl.Services[0].Reals[0]) || srv.Up(&tbl.Services[1], &tbl.Services[1].Reals[0]) {
		t.Fatal("Up does not tell the protocols apart")
	}
}

// TestHealthServiceCheck gives one service a check of its own on another
// port (keepalived's connect_port): its real servers, even one with port
// 0, are checked there with that check, while the other service keeps the
// default check on the real servers' own ports.
func TestHealthServiceCheck(t *testing.T) {
	web := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}
	zero := portZeroService()
	all := zero.Key
	d, srv, _ := healthServer(t, vs.Service{Key: web, Sched: "rr", Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Weight: 1}}}, zero)
	rec := &recorder{calls: map[string]int{}}
	own := control.ServiceCheck{Dial: rec.check("own", true), Port: 8080}
	runHealth(t, srv, control.HealthOptions{Dial: rec.check("default", false),
		ForService: func(k vs.Key) (control.ServiceCheck, bool) { return own, k == all }})
	for deadline := time.Now().Add(5 * time.Second); d.Snapshot().Table.Services[1].Reals[0].Weight != 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the port-0 server with its own check was not quiesced; checks %v", rec.snapshot())
		}
	}
	calls := rec.snapshot()
	if calls["own 198.18.0.12:8080"] == 0 || calls["default 198.18.0.11:80"] == 0 || len(calls) != 2 {
		t.Fatalf("checks made: %v", calls)
	}
	if d.Snapshot().Table.Services[0].Reals[0].Weight != 1 {
		t.Fatal("the default-checked service was quiesced")
	}
}

// recorder counts the checks made, by kind and address.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
}

// check returns a check that records its calls and passes or fails.
func (r *recorder) check(kind string, fail bool) func(context.Context, netip.AddrPort) error {
	return func(_ context.Context, a netip.AddrPort) error {
		r.mu.Lock()
		r.calls[kind+" "+a.String()]++
		r.mu.Unlock()
		if fail {
			return errors.New("down")
		}
		return nil
	}
}

func (r *recorder) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.calls)
}

// runHealth runs fast health checks (5 ms rounds, one result decides) on
// srv until the test ends.
func runHealth(t *testing.T, srv *control.Server, opt control.HealthOptions) {
	opt.Interval, opt.Timeout, opt.Rise, opt.Fall = 5*time.Millisecond, 5*time.Millisecond, 1, 1
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(opt, stop)
		close(done)
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// healthServer applies svcs to an in-memory director and returns it with
// a control server over the same table.
func healthServer(t *testing.T, svcs ...vs.Service) (*controltest.Director, *control.Server, *vs.Table) {
	t.Helper()
	d, err := controltest.NewDirector(4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	tbl := &vs.Table{}
	for _, s := range svcs {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	return d, control.New(d, d.CT, tbl, nil, nil), tbl
}

// portZeroService is a persistent all-ports service whose one real server
// has port 0, so a check has no port of its own to go to.
func portZeroService() vs.Service {
	return vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.2"), Port: 0}, Sched: "rr",
		Persistent: true, Timeout: 300, Netmask: netip.MustParseAddr("255.255.255.255"),
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.12"), Port: 0, Weight: 1}}}
}

// TestHealthSorryServer: while every real server of a service is down the
// dataplane gets the sorry server; when one comes back it goes away.
func TestHealthSorryServer(t *testing.T) {
	web := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}
	var reals []vs.Real
	for _, a := range []string{"198.18.0.11", "198.18.0.12"} {
		reals = append(reals, vs.Real{Addr: netip.MustParseAddr(a), Port: 80, Weight: 1})
	}
	d, srv, tbl := healthServer(t, vs.Service{Key: web, Sched: "rr", Reals: reals})
	sorry := vs.Real{Addr: netip.MustParseAddr("198.18.0.99"), Port: 80, Weight: 1}
	var mu sync.Mutex
	failing := map[netip.AddrPort]bool{}
	runHealth(t, srv, control.HealthOptions{
		Dial: func(_ context.Context, a netip.AddrPort) error {
			mu.Lock()
			defer mu.Unlock()
			if failing[a] {
				return errors.New("down")
			}
			return nil
		},
		Sorry: func(k vs.Key) (vs.Real, bool) { return sorry, k == web }})
	dataplaneReals := func() map[string]int32 {
		m := map[string]int32{}
		for _, r := range d.Snapshot().Table.Services[0].Reals {
			m[r.AddrPort().String()] = r.Weight
		}
		return m
	}
	waitFor := func(want map[string]int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !maps.Equal(dataplaneReals(), want); time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("dataplane reals %v, want %v", dataplaneReals(), want)
			}
		}
	}
	mu.Lock()
	failing[reals[0].AddrPort()] = true
	mu.Unlock()
	waitFor(map[string]int32{"198.18.0.11:80": 0, "198.18.0.12:80": 1})
	mu.Lock()
	failing[reals[1].AddrPort()] = true
	mu.Unlock()
	waitFor(map[string]int32{"198.18.0.11:80": 0, "198.18.0.12:80": 0, "198.18.0.99:80": 1})
	if len(tbl.Services[0].Reals) != 2 {
		t.Fatal("the sorry server leaked into the configured table")
	}
	mu.Lock()
	failing[reals[0].AddrPort()] = false
	mu.Unlock()
	waitFor(map[string]int32{"198.18.0.11:80": 1, "198.18.0.12:80": 0})
}

// TestHealthRefusedApplyIsReportedAndRetried: when the director refuses
// the table a health change produces, the refusal is reported (not
// dropped), the dataplane keeps its table, and the change is applied once
// the director accepts again.
func TestHealthRefusedApplyIsReportedAndRetried(t *testing.T) {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "wrr"}
	for i, w := range []int32{1, 2} {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 80, Weight: w})
	}
	d, srv, _ := healthServer(t, s)
	rs2 := netip.MustParseAddrPort("198.18.0.12:80")
	var mu sync.Mutex
	var refusals []error
	dial := func(ctx context.Context, a netip.AddrPort) error {
		if a == rs2 {
			return errors.New("connection refused")
		}
		return nil
	}
	refused := errors.New("steering map full")
	d.RefuseApply(refused)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 1, Fall: 1, Dial: dial,
			OnApplyError: func(err error) {
				mu.Lock()
				refusals = append(refusals, err)
				mu.Unlock()
			}}, stop)
		close(done)
	}()
	defer func() { close(stop); <-done }()
	weightOf := func() int32 {
		for _, r := range d.Snapshot().Table.Services[0].Reals {
			if r.AddrPort() == rs2 {
				return r.Weight
			}
		}
		return -1
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(refusals)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refused apply reported %d times, want at least 2 (one, then a retry)", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	if !errors.Is(refusals[0], refused) {
		t.Errorf("reported %v, want the director's %v", refusals[0], refused)
	}
	mu.Unlock()
	if w := weightOf(); w != 2 {
		t.Fatalf("dataplane weight of %s is %d while the director refuses, want the old 2", rs2, w)
	}
	d.RefuseApply(nil)
	for weightOf() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after the director accepts again, weight of %s is %d, want 0", rs2, weightOf())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
