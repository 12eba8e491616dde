package control_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

// listen6 listens on [::1]:0 for network ("tcp6" or "udp6") until the
// test ends or the returned function closes it; it skips the test on a
// host without IPv6 loopback.
func listen6(t *testing.T, network string) (netip.AddrPort, func()) {
	t.Helper()
	if network == "udp6" {
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		skipNo6(t, err)
		t.Cleanup(func() { c.Close() })
		return c.LocalAddr().(*net.UDPAddr).AddrPort(), func() { c.Close() }
	}
	l, err := net.Listen("tcp6", "[::1]:0")
	skipNo6(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort(), func() { l.Close() }
}

func skipNo6(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// healthz6 is healthzServer on [::1].
func healthz6(t *testing.T, useTLS bool) (netip.AddrPort, func(int)) {
	t.Helper()
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
	l, err := net.Listen("tcp6", "[::1]:0")
	skipNo6(t, err)
	ts.Listener.Close()
	ts.Listener = l
	if useTLS {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return l.Addr().(*net.TCPAddr).AddrPort(), func(s int) {
		mu.Lock()
		status = s
		mu.Unlock()
	}
}

// TestHealthChecksIPv6: every check type works against real servers on
// IPv6 (listeners on ::1): a TCP connect, keepalived's UDP_CHECK (the
// ICMPv6 port unreachable fails it), an HTTP and an HTTPS GET (the URL
// takes the address in brackets), and an exec check, which gets the bare
// address in {addr} and AFVS_REAL_ADDR and the bracketed dial string in
// {hostport}.
func TestHealthChecksIPv6(t *testing.T) {
	ctx := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return c
	}
	tcp, closeTCP := listen6(t, "tcp6")
	if err := control.TCPCheck(ctx(2*time.Second), tcp); err != nil {
		t.Errorf("TCP check of a listening [::1] port: %v", err)
	}
	closeTCP()
	if err := control.TCPCheck(ctx(2*time.Second), tcp); err == nil {
		t.Error("TCP check of a closed [::1] port passed")
	}

	udp, closeUDP := listen6(t, "udp6")
	if err := control.UDPCheck(ctx(200*time.Millisecond), udp); err != nil {
		t.Errorf("UDP check of a silent [::1] listener: %v", err)
	}
	closeUDP()
	if err := control.UDPCheck(ctx(2*time.Second), udp); err == nil {
		t.Error("UDP check of a closed [::1] port passed")
	}

	for _, useTLS := range []bool{false, true} {
		addr, setStatus := healthz6(t, useTLS)
		check := control.HTTPCheck("/healthz", 200)
		if useTLS {
			check = control.HTTPSCheck("/healthz", 200)
		}
		if err := check(ctx(2*time.Second), addr); err != nil {
			t.Errorf("TLS %v: healthy server on %s failed: %v", useTLS, addr, err)
		}
		setStatus(503)
		err := check(ctx(2*time.Second), addr)
		if err == nil || !strings.Contains(err.Error(), "status 503, want 200") || !strings.Contains(err.Error(), addr.String()) {
			t.Errorf("TLS %v: 503 passed or the error does not name %s: %v", useTLS, addr, err)
		}
	}

	addr := netip.MustParseAddrPort("[2001:2::11]:8080")
	script := `test "$1" = 2001:2::11 && test "$2" = 8080 && test "$3" = "[2001:2::11]:8080" && test "$AFVS_REAL_ADDR" = 2001:2::11 && test "$AFVS_REAL_PORT" = 8080`
	check := control.ExecCheck([]string{"/bin/sh", "-c", script, "sh", "{addr}", "{port}", "{hostport}"})
	if err := check(ctx(5*time.Second), addr); err != nil {
		t.Errorf("exec check for %s: %v", addr, err)
	}
	if err := check(ctx(5*time.Second), netip.MustParseAddrPort("[2001:2::12]:8080")); err == nil {
		t.Error("the script fails for another server, but the check passed")
	}
	v4 := control.ExecCheck([]string{"/bin/sh", "-c", `test "$0" = 198.18.0.11:80`, "{hostport}"})
	if err := v4(ctx(5*time.Second), netip.MustParseAddrPort("198.18.0.11:80")); err != nil {
		t.Errorf("{hostport} of an IPv4 server: %v", err)
	}
}

// recordingDirector accepts any table, IPv6 included, and keeps the last
// one: the health checker's view of a dataplane that forwards IPv6.
type recordingDirector struct {
	*controltest.Director
	mu   sync.Mutex
	last *vs.Table
}

func (d *recordingDirector) Apply(t *vs.Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = t.Clone()
	return nil
}

// weights gives the applied weight of every real server, by service and
// address.
func (d *recordingDirector) weights() map[string]int32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int32{}
	if d.last == nil {
		return m
	}
	for _, s := range d.last.Services {
		for _, r := range s.Reals {
			m[s.Key.String()+" "+r.AddrPort().String()] = r.Weight
		}
	}
	return m
}

// TestHealthRunIPv6: the checker dials IPv6 real servers directly, with
// the default check of each protocol, and quiesces those that fail and
// restores them, whatever the dataplane forwards. The real servers
// listen on ::1.
func TestHealthRunIPv6(t *testing.T) {
	up, _ := listen6(t, "tcp6")
	down, closeDown := listen6(t, "tcp6")
	udp, _ := listen6(t, "udp6")
	closeDown()
	vip := netip.MustParseAddr("2001:2::1")
	tbl := &vs.Table{Services: []vs.Service{
		{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr", Reals: []vs.Real{
			{Addr: up.Addr(), Port: up.Port(), Weight: 2},
			{Addr: down.Addr(), Port: down.Port(), Weight: 3},
		}},
		{Key: vs.Key{Proto: vs.UDP, Addr: vip, Port: 53}, Sched: "rr", Reals: []vs.Real{
			{Addr: udp.Addr(), Port: udp.Port(), Weight: 4},
		}},
	}}
	cd, err := controltest.NewDirector(1024)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cd.Close)
	d := &recordingDirector{Director: cd}
	srv := control.New(d, cd.CT, tbl, nil, nil)
	var mu sync.Mutex
	var events []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(control.HealthOptions{Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1,
			OnChange: func(a netip.AddrPort, ok bool) {
				mu.Lock()
				events = append(events, a.String()+map[bool]string{true: " up", false: " down"}[ok])
				mu.Unlock()
			}}, stop)
		close(done)
	}()
	t.Cleanup(func() { close(stop); <-done })
	key := func(proto string, a netip.AddrPort) string {
		p := map[string]vs.Proto{"tcp": vs.TCP, "udp": vs.UDP}[proto]
		port := map[string]uint16{"tcp": 80, "udp": 53}[proto]
		return vs.Key{Proto: p, Addr: vip, Port: port}.String() + " " + a.String()
	}
	waitFor := func(want map[string]int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := d.weights()
			ok := true
			for k, w := range want {
				if got[k] != w {
					ok = false
				}
			}
			if ok && len(got) == len(want) {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("applied weights %v, want %v (events %v)", got, want, events)
			}
		}
	}
	waitFor(map[string]int32{key("tcp", up): 2, key("tcp", down): 0, key("udp", udp): 4})
	if !strings.HasPrefix(key("tcp", down), "TCP [2001:2::1]:80 [::1]:") {
		t.Fatalf("key %q", key("tcp", down))
	}
	// The server comes back on the same port.
	l, err := net.Listen("tcp6", down.String())
	if err != nil {
		t.Skipf("could not listen on %s again: %v", down, err)
	}
	defer l.Close()
	waitFor(map[string]int32{key("tcp", up): 2, key("tcp", down): 3, key("udp", udp): 4})
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0] != down.String()+" down" || events[1] != down.String()+" up" {
		t.Errorf("events %v, want %s down then up", events, down)
	}
}
