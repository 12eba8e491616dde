package main

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/vs"
)

// TestServiceChecksIPv6: an IPv6 service's own checks, built from the
// config as the daemon builds them, dial an IPv6 real server directly at
// [addr]:port: an HTTP GET and a TCP connect against a listener on ::1, on
// the check's own port (keepalived's connect_port).
func TestServiceChecksIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			w.WriteHeader(404)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	w := 1
	reals := []config.RealConfig{{Address: "::1", Weight: &w}}
	c := &config.Config{Services: []config.ServiceConfig{
		{Proto: "tcp", Address: "2001:2::1", Port: 80, Scheduler: "rr", Reals: reals,
			Health: &config.ServiceHealth{Type: "http", Path: "/ready", Port: port}},
		{Proto: "tcp", Address: "2001:2::1", Port: 81, Scheduler: "rr", Reals: reals,
			Health: &config.ServiceHealth{Type: "http", Path: "/other", Port: port}},
		{Proto: "tcp", Address: "2001:2::1", Port: 82, Scheduler: "rr", Reals: reals,
			Health: &config.ServiceHealth{Type: "tcp", Port: port}},
	}}
	m, err := serviceChecks(c)
	if err != nil {
		t.Fatal(err)
	}
	key := func(p uint16) vs.Key { return vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: p} }
	for p, wantOK := range map[uint16]bool{80: true, 81: false, 82: true} {
		sc, ok := m[key(p)]
		if !ok || sc.Port != uint16(port) || sc.Dial == nil {
			t.Fatalf("service %v: check %+v, %v", key(p), sc, ok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := sc.Dial(ctx, netip.AddrPortFrom(netip.IPv6Loopback(), sc.Port))
		cancel()
		if (err == nil) != wantOK {
			t.Errorf("service %v: check of [::1]:%d: %v, want ok=%v", key(p), port, err, wantOK)
		}
	}
}
