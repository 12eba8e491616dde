package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/vs"
)

// loopbackDNS answers every query on 127.0.0.1 with NOERROR and keeps
// the last question.
func loopbackDNS(t *testing.T) (netip.AddrPort, *atomic.Value) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var last atomic.Value
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			last.Store(q.Questions[0])
			q.Response = true
			if b, err := q.Pack(); err == nil {
				_, _ = pc.WriteTo(b, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), &last
}

// loopbackSMTP holds a good SMTP dialogue on 127.0.0.1 and keeps the last
// HELO line.
func loopbackSMTP(t *testing.T) (netip.AddrPort, *atomic.Value) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var helo atomic.Value
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 mx.example.test ESMTP\r\n")
				line, _ := r.ReadString('\n')
				helo.Store(line)
				io.WriteString(c, "250 mx.example.test\r\n")
				r.ReadString('\n')
				io.WriteString(c, "221 bye\r\n")
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), &helo
}

func dial(f func(context.Context, netip.AddrPort) error, a netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	return f(ctx, a)
}

// TestProtoChecksFromConfig: the daemon builds the dns, smtp and digest
// checks from the health sections, a service's own and the top-level
// one, with their options and defaults (the root's SOA; HELO localhost).
func TestProtoChecksFromConfig(t *testing.T) {
	dnsAddr, question := loopbackDNS(t)
	smtpAddr, helo := loopbackSMTP(t)
	var body atomic.Value
	body.Store("page v1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body.Load().(string)) }))
	defer srv.Close()
	httpAddr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	sum := md5.Sum([]byte("page v1"))
	digest := hex.EncodeToString(sum[:])

	w := 1
	svc := func(port int, h config.ServiceHealth) config.ServiceConfig {
		return config.ServiceConfig{Proto: "tcp", Address: "198.19.0.1", Port: port, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}}, Health: &h}
	}
	c := &config.Config{Services: []config.ServiceConfig{
		svc(1, config.ServiceHealth{Type: "dns", DNSType: "mx", DNSName: "example.test"}),
		svc(2, config.ServiceHealth{Type: "dns"}),
		svc(3, config.ServiceHealth{Type: "smtp", HELOName: "director.example.test"}),
		svc(4, config.ServiceHealth{Type: "smtp"}),
		svc(5, config.ServiceHealth{Type: "http", Digest: digest}),
	}}
	m, err := serviceChecks(c)
	if err != nil {
		t.Fatal(err)
	}
	key := func(port uint16) vs.Key {
		return vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: port}
	}
	wantQ := func(what, name string, typ dnsmessage.Type) {
		t.Helper()
		q, _ := question.Load().(dnsmessage.Question)
		if q.Name.String() != name || q.Type != typ {
			t.Errorf("%s: asked %v, want %s %s", what, q, name, typ)
		}
	}
	for _, tc := range []struct {
		port uint16
		addr netip.AddrPort
		then func()
	}{
		{1, dnsAddr, func() { wantQ("dns_type mx", "example.test.", dnsmessage.TypeMX) }},
		{2, dnsAddr, func() { wantQ("dns defaults", ".", dnsmessage.TypeSOA) }},
		{3, smtpAddr, func() {
			if got := helo.Load(); got != "HELO director.example.test\r\n" {
				t.Errorf("helo_name: %q", got)
			}
		}},
		{4, smtpAddr, func() {
			if got := helo.Load(); got != "HELO localhost\r\n" {
				t.Errorf("default helo: %q", got)
			}
		}},
		{5, httpAddr, func() {}},
	} {
		sc, ok := m[key(tc.port)]
		if !ok || sc.Dial == nil {
			t.Fatalf("service port %d: no check of its own", tc.port)
		}
		if err := dial(sc.Dial, tc.addr); err != nil {
			t.Errorf("service port %d: %v", tc.port, err)
		}
		tc.then()
	}
	body.Store("page v2")
	if err := dial(m[key(5)].Dial, httpAddr); err == nil {
		t.Error("digest: a changed body passed")
	}

	// The top-level section: dns checks TCP and UDP services' servers
	// alike; smtp TCP ones; digest reaches the HTTP check's options.
	var checks atomic.Pointer[map[vs.Key]control.ServiceCheck]
	var sorry atomic.Pointer[map[vs.Key]vs.Real]
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	top := func(h config.HealthConfig) control.HealthOptions {
		h.Interval, h.Timeout, h.Rise, h.Fall = time.Second, time.Second, 1, 1
		return healthOptions(&config.Config{Health: h}, &checks, &sorry, log)
	}
	opt := top(config.HealthConfig{Type: "dns", DNSType: "AAAA", DNSName: "v6.example.test"})
	if opt.Dial == nil || opt.UDPDial == nil {
		t.Fatal("top-level dns: no Dial or UDPDial")
	}
	for _, d := range []func(context.Context, netip.AddrPort) error{opt.Dial, opt.UDPDial} {
		question.Store(dnsmessage.Question{})
		if err := dial(d, dnsAddr); err != nil {
			t.Errorf("top-level dns: %v", err)
		}
		wantQ("top-level dns", "v6.example.test.", dnsmessage.TypeAAAA)
	}
	opt = top(config.HealthConfig{Type: "smtp", HELOName: "top.example.test"})
	if err := dial(opt.Dial, smtpAddr); err != nil || helo.Load() != "HELO top.example.test\r\n" {
		t.Errorf("top-level smtp: %v, %q", err, helo.Load())
	}
	if opt = top(config.HealthConfig{Type: "https", Path: "/", Status: 200, Digest: digest}); opt.HTTPDigest != digest || !opt.HTTPS {
		t.Errorf("top-level https digest: %+v", opt)
	}
}

// TestVirtualHostFromConfig: a service's virtualhost reaches its HTTP
// check's Host header, and the top-level one the health options.
func TestVirtualHostFromConfig(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "www.example.test" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	w := 1
	svc := func(port int, h config.ServiceHealth) config.ServiceConfig {
		return config.ServiceConfig{Proto: "tcp", Address: "198.19.0.1", Port: port, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}}, Health: &h}
	}
	m, err := serviceChecks(&config.Config{Services: []config.ServiceConfig{
		svc(1, config.ServiceHealth{Type: "http", VirtualHost: "www.example.test"}),
		svc(2, config.ServiceHealth{Type: "http"}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	key := func(port uint16) vs.Key {
		return vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: port}
	}
	if err := dial(m[key(1)].Dial, addr); err != nil {
		t.Errorf("service with virtualhost: %v", err)
	}
	if err := dial(m[key(2)].Dial, addr); err == nil {
		t.Error("service without virtualhost passed a server that answers by name only")
	}
	var checks atomic.Pointer[map[vs.Key]control.ServiceCheck]
	var sorry atomic.Pointer[map[vs.Key]vs.Real]
	h := config.HealthConfig{Type: "http", Path: "/", Status: 200, VirtualHost: "www.example.test", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}
	if opt := healthOptions(&config.Config{Health: h}, &checks, &sorry, slog.New(slog.NewTextHandler(io.Discard, nil))); opt.HTTPVirtualHost != "www.example.test" {
		t.Errorf("top-level virtualhost: %q", opt.HTTPVirtualHost)
	}
}
