package control_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/vs"
)

// The namespace test's addresses: the checker's side and the real
// server's, on one veth link, from RFC 5180's benchmark range.
const (
	ns6Checker = "2001:2:0:1::1"
	ns6Real    = "2001:2:0:1::2"
)

// TestHealthIPv6Namespace checks IPv6 real servers across a link, with
// neighbour discovery, instead of over loopback: a namespace holds a real
// server at 2001:2:0:1::2 (an HTTP server on 8080, HTTPS on 8443, a UDP
// socket on 5353; 8081 and 5354 closed), and this test binary runs again
// inside a second namespace linked to it (2001:2:0:1::1), where
// TestHealthIPv6NamespaceChild makes the checks. Both namespaces are this
// test's own and are removed at its end.
func TestHealthIPv6Namespace(t *testing.T) {
	if os.Getenv("AFVS_HEALTH6_CHILD") != "" {
		t.Skip("the child runs TestHealthIPv6NamespaceChild only")
	}
	if err := testnet.Available(); err != nil {
		t.Skip(err)
	}
	n := testnet.New()
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("removing the namespaces: %v", err)
		}
	})
	cli, err := n.NS("h6c")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := n.NS("h6s")
	if err != nil {
		t.Fatal(err)
	}
	if err := testnet.Veth(cli, "h6c0", srv, "h6s0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns        *testnet.NS
		dev, addr string
	}{{cli, "h6c0", ns6Checker}, {srv, "h6s0", ns6Real}} {
		if err := c.ns.IP("addr", "add", c.addr+"/64", "dev", c.dev, "nodad"); err != nil {
			t.Fatal(err)
		}
		if err := c.ns.IP("link", "set", c.dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	// The real server's sockets, made inside its namespace; they keep
	// working from any thread.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(503)
		}
	})
	var udp *net.UDPConn
	err = srv.Do(func() error {
		for _, tlsOn := range []bool{false, true} {
			port := map[bool]string{false: "8080", true: "8443"}[tlsOn]
			l, err := net.Listen("tcp6", net.JoinHostPort(ns6Real, port))
			if err != nil {
				return err
			}
			ts := httptest.NewUnstartedServer(handler)
			ts.Listener.Close()
			ts.Listener = l
			if tlsOn {
				ts.StartTLS()
			} else {
				ts.Start()
			}
			t.Cleanup(ts.Close)
		}
		var err error
		udp, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("["+ns6Real+"]:5353")))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	cmd := cli.Command(os.Args[0], "-test.run=^TestHealthIPv6NamespaceChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "AFVS_HEALTH6_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHealthIPv6NamespaceChild") {
		t.Fatalf("the checks in namespace %s: %v\n%s", cli.Name, err, out)
	}
}

// TestHealthIPv6NamespaceChild is TestHealthIPv6Namespace's checker side;
// it runs only inside that test's namespace.
func TestHealthIPv6NamespaceChild(t *testing.T) {
	if os.Getenv("AFVS_HEALTH6_CHILD") == "" {
		t.Skip("run by TestHealthIPv6Namespace inside its namespace")
	}
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(ns6Real), port) }
	for _, c := range []struct {
		name  string
		check func(context.Context, netip.AddrPort) error
		port  uint16
		up    bool
	}{
		{"tcp", control.TCPCheck, 8080, true},
		{"tcp closed", control.TCPCheck, 8081, false},
		{"udp", control.UDPCheck, 5353, true},
		{"udp closed", control.UDPCheck, 5354, false},
		{"http", control.HTTPCheck("/healthz", 200), 8080, true},
		{"http 503", control.HTTPCheck("/other", 200), 8080, false},
		{"https", control.HTTPSCheck("/healthz", 200), 8443, true},
		{"exec", control.ExecCheck([]string{"/bin/sh", "-c", `test "$0" = "[` + ns6Real + `]:8080" && test "$AFVS_REAL_ADDR" = ` + ns6Real, "{hostport}"}), 8080, true},
	} {
		timeout := 3 * time.Second
		if c.name == "udp" {
			timeout = 300 * time.Millisecond // silence passes: wait a little only
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := c.check(ctx, at(c.port))
		cancel()
		if (err == nil) != c.up {
			t.Errorf("%s check of %s: %v, want up=%v", c.name, at(c.port), err, c.up)
		}
	}
	// The health loop quiesces the closed one and keeps the other.
	vip := netip.MustParseAddr("2001:2::1")
	tbl := &vs.Table{Services: []vs.Service{{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr", Reals: []vs.Real{
		{Addr: at(8080).Addr(), Port: 8080, Weight: 2}, {Addr: at(8081).Addr(), Port: 8081, Weight: 3}}}}}
	cd, err := controltest.NewDirector(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer cd.Close()
	d := &recordingDirector{Director: cd}
	srv := control.New(d, cd.CT, tbl, nil, nil)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		srv.RunHealth(control.HealthOptions{Interval: 50 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1}, stop)
		close(done)
	}()
	defer func() { close(stop); <-done }()
	want := map[string]int32{"TCP [2001:2::1]:80 " + at(8080).String(): 2, "TCP [2001:2::1]:80 " + at(8081).String(): 0}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := d.weights()
		if len(got) == 2 && got["TCP [2001:2::1]:80 "+at(8080).String()] == 2 && got["TCP [2001:2::1]:80 "+at(8081).String()] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied weights %v, want %v", got, want)
		}
	}
}
