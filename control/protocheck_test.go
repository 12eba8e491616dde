package control_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/afvs/afvs/control"
)

// dnsServer is a DNS server on 127.0.0.1 whose reply to each query is
// chosen by mode, which the test may change between checks.
type dnsServer struct {
	addr netip.AddrPort
	mode atomic.Value // string
	mu   sync.Mutex
	qs   []dnsmessage.Message // the queries seen
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &dnsServer{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	s.mode.Store("answer")
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if err := q.Unpack(buf[:n]); err != nil || len(q.Questions) != 1 {
				continue
			}
			s.mu.Lock()
			s.qs = append(s.qs, q)
			s.mu.Unlock()
			for _, r := range s.replies(q) {
				_, _ = pc.WriteTo(r, from)
			}
		}
	}()
	return s
}

// replies builds the datagrams that answer q in the current mode.
func (s *dnsServer) replies(q dnsmessage.Message) [][]byte {
	h := dnsmessage.Header{ID: q.Header.ID, Response: true, RecursionDesired: q.Header.RecursionDesired, Authoritative: true}
	pack := func(h dnsmessage.Header, answer bool) []byte {
		m := dnsmessage.Message{Header: h, Questions: q.Questions}
		if answer {
			m.Answers = []dnsmessage.Resource{{
				Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
				Body:   &dnsmessage.AResource{A: [4]byte{198, 18, 0, 53}},
			}}
		}
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		return b
	}
	switch mode := s.mode.Load().(string); mode {
	case "answer":
		return [][]byte{pack(h, true)}
	case "empty": // NOERROR without an answer (NODATA)
		return [][]byte{pack(h, false)}
	case "refused", "nxdomain", "servfail":
		h.RCode = map[string]dnsmessage.RCode{"refused": dnsmessage.RCodeRefused, "nxdomain": dnsmessage.RCodeNameError, "servfail": dnsmessage.RCodeServerFailure}[mode]
		return [][]byte{pack(h, false)}
	case "wrong-id":
		h.ID++
		return [][]byte{pack(h, true)}
	case "wrong-id-then-answer": // a stray datagram first, then the answer
		w := h
		w.ID++
		return [][]byte{pack(w, true), []byte{1, 2, 3}, pack(h, true)}
	case "not-response":
		h.Response = false
		return [][]byte{pack(h, true)}
	case "silent":
		return nil
	}
	panic("unknown mode")
}

func (s *dnsServer) last() dnsmessage.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.qs[len(s.qs)-1]
}

func runCheck(check func(context.Context, netip.AddrPort) error, addr netip.AddrPort, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	err := check(ctx, addr)
	return time.Since(start), err
}

// TestDNSCheck: keepalived's DNS_CHECK against a real server: NOERROR
// (with or without an answer) passes, REFUSED, NXDOMAIN and SERVFAIL fail
// at once, a reply with another ID or without the QR bit is ignored (so
// silence follows and the timeout fails the check), and a stray datagram
// before the real answer does not fail it. The query carries the
// configured name and type, class IN and RD.
func TestDNSCheck(t *testing.T) {
	s := startDNS(t)
	check, err := control.DNSCheck("a", "www.example.test")
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 300 * time.Millisecond
	cases := []struct {
		mode   string
		ok     bool
		prompt bool // fails (or passes) well before the timeout
		want   string
	}{
		{"answer", true, true, ""},
		{"empty", true, true, ""},
		{"wrong-id-then-answer", true, true, ""},
		{"refused", false, true, "RCodeRefused"},
		{"nxdomain", false, true, "RCodeNameError"},
		{"servfail", false, true, "RCodeServerFailure"},
		{"wrong-id", false, false, "no answer"},
		{"not-response", false, false, "no answer"},
		{"silent", false, false, "no answer"},
	}
	for _, tc := range cases {
		s.mode.Store(tc.mode)
		took, err := runCheck(check, s.addr, timeout)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.mode, err, tc.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.mode, err, tc.want)
		}
		if tc.prompt && took > timeout/2 {
			t.Errorf("%s: took %v, want well under the %v timeout", tc.mode, took, timeout)
		}
		q := s.last()
		if got := q.Questions[0]; got.Name.String() != "www.example.test." || got.Type != dnsmessage.TypeA || got.Class != dnsmessage.ClassINET {
			t.Errorf("%s: question %v, want www.example.test. A IN", tc.mode, got)
		}
		if !q.Header.RecursionDesired || q.Header.Response {
			t.Errorf("%s: query header %+v, want RD set and QR clear", tc.mode, q.Header)
		}
	}
	// keepalived's default: the root's SOA.
	s.mode.Store("answer")
	root, err := control.DNSCheck("SOA", ".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runCheck(root, s.addr, timeout); err != nil {
		t.Fatalf("SOA .: %v", err)
	}
	if got := s.last().Questions[0]; got.Name.String() != "." || got.Type != dnsmessage.TypeSOA {
		t.Errorf("question %v, want . SOA", got)
	}
	// Two queries carry different IDs (a random one each).
	ids := map[uint16]bool{}
	for range 8 {
		if _, err := runCheck(check, s.addr, timeout); err != nil {
			t.Fatal(err)
		}
		ids[s.last().Header.ID] = true
	}
	if len(ids) < 2 {
		t.Errorf("8 queries used %d ID(s)", len(ids))
	}
}

// TestDNSCheckClosedPort: nothing listening answers with an ICMP port
// unreachable, which fails the check before the timeout.
func TestDNSCheckClosedPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	check, err := control.DNSCheck("A", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	took, err := runCheck(check, addr, time.Second)
	if err == nil || strings.Contains(err.Error(), "no answer") || took > 500*time.Millisecond {
		t.Fatalf("closed port: err %v after %v, want a refusal before the timeout", err, took)
	}
}

// TestDNSCheckRefusesBadOptions: an unknown type or a name dnsmessage
// cannot pack is refused when the check is built.
func TestDNSCheckRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct{ typ, name, want string }{
		{"PTR", "example.test", `"PTR"`},
		{"", "example.test", `""`},
		{"A", "a..b", "a..b"},
		{"A", strings.Repeat("x", 64) + ".test", "xxxx"},
	} {
		if _, err := control.DNSCheck(tc.typ, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DNSCheck(%q, %q): %v, want an error naming %s", tc.typ, tc.name, err, tc.want)
		}
	}
}

// startSMTP serves each connection with dialogue; the listener closes with
// the test.
func startSMTP(t *testing.T, dialogue func(c net.Conn, r *bufio.Reader)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				dialogue(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// TestSMTPCheck: keepalived's SMTP_CHECK against real servers: a 220
// greeting, 250 to HELO with the configured name and a reply to QUIT
// pass; 421 or 554 greetings, a refused HELO, a server that closes before
// the dialogue ends or says nothing fail.
func TestSMTPCheck(t *testing.T) {
	var helo atomic.Value
	helo.Store("")
	good := func(banner, heloReply string, quit bool) func(c net.Conn, r *bufio.Reader) {
		return func(c net.Conn, r *bufio.Reader) {
			if _, err := c.Write([]byte(banner)); err != nil {
				return
			}
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			helo.Store(line)
			if heloReply == "" {
				return // closes early
			}
			c.Write([]byte(heloReply))
			if line, err = r.ReadString('\n'); err != nil || line != "QUIT\r\n" {
				return
			}
			if quit {
				c.Write([]byte("221 2.0.0 Bye\r\n"))
			}
		}
	}
	const timeout = 500 * time.Millisecond
	cases := []struct {
		name     string
		dialogue func(c net.Conn, r *bufio.Reader)
		ok       bool
		want     string
	}{
		{"good", good("220 mx.example.test ESMTP\r\n", "250 mx.example.test\r\n", true), true, ""},
		{"multi-line greeting", good("220-mx.example.test ESMTP\r\n220 welcome\r\n", "250 mx.example.test\r\n", true), true, ""},
		{"421 greeting", good("421 4.3.2 busy, try later\r\n", "250 ok\r\n", true), false, "421"},
		{"554 greeting", good("554 5.3.2 no service here\r\n", "250 ok\r\n", true), false, "554"},
		{"HELO refused", good("220 mx.example.test ESMTP\r\n", "501 5.5.4 bad HELO\r\n", true), false, "501"},
		{"long refusal", good("554 "+strings.Repeat("x", 5000)+"\r\n", "250 ok\r\n", true), false, "554"},
		{"closes after greeting", func(c net.Conn, r *bufio.Reader) { c.Write([]byte("220 mx ESMTP\r\n")) }, false, "HELO"},
		{"closes after HELO", good("220 mx ESMTP\r\n", "", true), false, "HELO"},
		{"no reply to QUIT", good("220 mx ESMTP\r\n", "250 ok\r\n", false), false, "QUIT"},
		{"silent", func(c net.Conn, r *bufio.Reader) { time.Sleep(2 * timeout) }, false, "greeting"},
	}
	check := control.SMTPCheck("director.example.test")
	for _, tc := range cases {
		addr := startSMTP(t, tc.dialogue)
		took, err := runCheck(check, addr, timeout)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("%s: error of %d bytes, want the reply cut", tc.name, len(err.Error()))
		}
		if took > timeout+200*time.Millisecond {
			t.Errorf("%s: took %v, past the %v timeout", tc.name, took, timeout)
		}
	}
	if got := helo.Load().(string); got != "HELO director.example.test\r\n" {
		t.Errorf("HELO line %q", got)
	}
	// Nothing listening: refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	if _, err := runCheck(check, closed, timeout); err == nil {
		t.Error("closed port: passed")
	}
}

// TestHTTPDigestCheck: HTTP_GET's digest against a server whose body
// changes: the MD5 of the body must be the configured one (in either
// case), after the status; a changed body, or the right body with
// another status, fails; without a digest only the status counts.
func TestHTTPDigestCheck(t *testing.T) {
	var body atomic.Value
	body.Store("healthy v1\n")
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	tls := httptest.NewTLSServer(srv.Config.Handler)
	defer tls.Close()
	sum := md5.Sum([]byte("healthy v1\n"))
	digest := hex.EncodeToString(sum[:])
	for _, s := range []struct {
		name  string
		https bool
		addr  netip.AddrPort
	}{
		{"http", false, netip.MustParseAddrPort(srv.Listener.Addr().String())},
		{"https", true, netip.MustParseAddrPort(tls.Listener.Addr().String())},
	} {
		check := control.HTTPDigestCheck(s.https, "/", 200, digest)
		upper := control.HTTPDigestCheck(s.https, "/", 200, strings.ToUpper(digest))
		plain := control.HTTPDigestCheck(s.https, "/", 200, "")
		body.Store("healthy v1\n")
		status.Store(200)
		if _, err := runCheck(check, s.addr, time.Second); err != nil {
			t.Errorf("%s: matching body: %v", s.name, err)
		}
		if _, err := runCheck(upper, s.addr, time.Second); err != nil {
			t.Errorf("%s: matching body, digest in capitals: %v", s.name, err)
		}
		body.Store("healthy v2\n")
		if _, err := runCheck(check, s.addr, time.Second); err == nil || !strings.Contains(err.Error(), "want "+digest) {
			t.Errorf("%s: changed body: %v, want a digest mismatch", s.name, err)
		}
		if _, err := runCheck(plain, s.addr, time.Second); err != nil {
			t.Errorf("%s: changed body without a digest: %v", s.name, err)
		}
		body.Store("healthy v1\n")
		status.Store(503)
		if _, err := runCheck(check, s.addr, time.Second); err == nil || !strings.Contains(err.Error(), "status 503") {
			t.Errorf("%s: right body, status 503: %v, want a status failure", s.name, err)
		}
	}
	// Through HealthOptions, as cmd/afvs configures it: HTTPDigest applies.
	body.Store("healthy v2\n")
	status.Store(200)
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	if err := control.NormalizedDial(control.HealthOptions{HTTPPath: "/", HTTPStatus: 200, HTTPDigest: digest}, addr); err == nil {
		t.Error("HealthOptions.HTTPDigest: changed body passed")
	}
}
