package control

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/afvs/afvs/vs"
)

// HealthOptions configure real-server health checks, in the manner of
// keepalived's checkers: every Interval (or its service's own, see
// ServiceCheck) each real server of each service gets its check (by default a TCP connect to its address and port, a UDP
// probe for UDP services); Fall failures in a row quiesce it (weight 0 in
// the dataplane: no new connections, existing ones continue, keepalived's
// inhibit_on_failure) or, with Remove, take it out of the service; Rise
// successes in a row bring it back with its configured weight.
type HealthOptions struct {
	Interval, Timeout time.Duration
	Rise, Fall        int
	// HTTPPath, when set, makes each check an HTTP GET of this path on the
	// real server's address and port that must answer HTTPStatus
	// (keepalived's HTTP_GET); otherwise a check is a TCP connect.
	HTTPPath   string
	HTTPStatus int
	// HTTPS makes the HTTP check use TLS (keepalived's SSL_GET). As there,
	// the server's certificate is not verified: the check asks whether the
	// server answers, and real servers often carry certificates for the
	// virtual service's name, not their own address.
	HTTPS bool
	// HTTPDigest, when set, is the MD5 of the body the HTTP check wants as
	// well as HTTPStatus, in hex (keepalived's digest); see HTTPDigestCheck.
	HTTPDigest string
	// HTTPVirtualHost, when set, is the Host header of the HTTP check's
	// GET (keepalived's virtualhost); see HTTPGet.
	HTTPVirtualHost string
	// Command, when set, makes each check a program run (keepalived's
	// MISC_CHECK); see ExecCheck. It takes precedence over HTTPPath.
	Command []string
	// Dial checks one real server of a TCP or firewall-mark service; nil
	// means one of the checks above.
	Dial func(ctx context.Context, addr netip.AddrPort) error
	// UDPDial checks one real server of a UDP service; nil means UDPCheck,
	// or the Command when there is one. A TCP connect or an HTTP GET would
	// find nothing listening on a UDP port and quiesce a healthy server.
	UDPDial func(ctx context.Context, addr netip.AddrPort) error
	// ForService, when set, may give a service a check and timing of its
	// own (a keepalived virtual_server's checker and delay_loop); it is
	// asked whenever a check falls due and on SetHealth, so it can follow
	// reloads.
	ForService func(k vs.Key) (ServiceCheck, bool)
	// Sorry, when set, may name a service's sorry server (keepalived's
	// sorry_server): while the checks find every real server of the
	// service down, the dataplane gets it as an extra real server, so new
	// connections are answered instead of dropped. Asked on every
	// publication, so it can follow reloads.
	Sorry func(k vs.Key) (vs.Real, bool)
	// Remove makes a failed real server leave the dataplane and the
	// listings instead of being quiesced, keepalived's choice without
	// inhibit_on_failure. It goes to the trash like a deleted one, so its
	// connections stay bound to it; when it recovers it is taken back with
	// them (ip_vs_trash_get_dest) and its configured weight.
	Remove bool
	// OnChange hears every up/down transition, for logging.
	OnChange func(addr netip.AddrPort, up bool)
	// OnApplyError hears a refused republish: the checks changed a real
	// server's state but the director kept the table in force. The next
	// round tries again until the director accepts it.
	OnApplyError func(err error)
}

// ServiceCheck is one service's own health check.
type ServiceCheck struct {
	// Dial checks one real server; nil keeps the default for the
	// service's protocol.
	Dial func(ctx context.Context, addr netip.AddrPort) error
	// Port, when not 0, is checked instead of the real server's port
	// (keepalived's connect_port), which also lets real servers with port
	// 0 be checked.
	Port uint16
	// Exec says Dial runs a command, which is run even for a real server
	// with no port.
	Exec bool
	// Interval, Timeout, Rise and Fall, when above 0, replace
	// HealthOptions' for this service's real servers (keepalived's
	// delay_loop, connect_timeout, retry and the successes to come back,
	// per virtual_server). A timeout above the interval is cut to it.
	Interval, Timeout time.Duration
	Rise, Fall        int
}

type health struct {
	opt   atomic.Pointer[HealthOptions] // swapped by SetHealth
	mu    sync.Mutex
	state map[target]*checkState
}

func (h *health) opts() *HealthOptions { return h.opt.Load() }

// timing is when and how strictly a target is checked.
type timing struct {
	interval, timeout time.Duration
	rise, fall        int
}

// target is one thing to check: a real server of a service, as
// keepalived checks each real_server of each virtual_server. A server
// behind a TCP and a UDP service, or behind two services with different
// checks, is two targets.
type target struct {
	svc  vs.Key
	addr netip.AddrPort
}

// probe is how a target is checked: which check, against which address.
type probe struct {
	dial func(ctx context.Context, addr netip.AddrPort) error
	addr netip.AddrPort
}

// plan names the check of real server r of service svc and its timing.
// UDP services get UDPDial, others (TCP, firewall marks) Dial, unless the
// service has a check of its own. ok is false when there is no port to
// check (a real server with port 0 takes the client's port, and no check
// port is set): the server then counts as up, unless the check is a
// command, which decides for itself.
func (h *health) plan(svc *vs.Service, r *vs.Real) (target, probe, timing, bool) {
	opt := h.opts()
	dial, exec := opt.Dial, opt.Command != nil
	if svc.Key.Proto == vs.UDP {
		dial = opt.UDPDial
	}
	port := r.Port
	tm := timing{opt.Interval, opt.Timeout, opt.Rise, opt.Fall}
	if opt.ForService != nil {
		if c, ok := opt.ForService(svc.Key); ok {
			if c.Dial != nil {
				dial, exec = c.Dial, c.Exec
			}
			if c.Port != 0 {
				port = c.Port
			}
			if c.Interval > 0 {
				tm.interval = c.Interval
			}
			if c.Timeout > 0 {
				tm.timeout = c.Timeout
			}
			if c.Rise > 0 {
				tm.rise = c.Rise
			}
			if c.Fall > 0 {
				tm.fall = c.Fall
			}
		}
	}
	tm.rise, tm.fall = max(tm.rise, 1), max(tm.fall, 1)
	if tm.timeout <= 0 || tm.timeout > tm.interval {
		tm.timeout = tm.interval
	}
	return target{svc.Key, r.AddrPort()}, probe{dial, netip.AddrPortFrom(r.Addr, port)}, tm, port != 0 || exec
}

type checkState struct {
	up         bool
	succ, fail int
}

// HTTPCheck returns a check that GETs path and wants status.
func HTTPCheck(path string, status int) func(ctx context.Context, addr netip.AddrPort) error {
	return httpCheck("http", path, status, "", "")
}

// HTTPSCheck is HTTPCheck over TLS, without certificate verification (see
// HealthOptions.HTTPS).
func HTTPSCheck(path string, status int) func(ctx context.Context, addr netip.AddrPort) error {
	return httpCheck("https", path, status, "", "")
}

// HTTPDigestCheck is HTTPCheck, or HTTPSCheck when https is set, that
// also wants the MD5 of the whole body to be digest, 32 hex digits in
// either case, as keepalived's HTTP_GET and SSL_GET compare a url's
// digest: the status is checked first, then the digest, and either one
// differing fails the check. The body is read to its end within the
// check's timeout; an empty digest checks the status alone.
func HTTPDigestCheck(https bool, path string, status int, digest string) func(ctx context.Context, addr netip.AddrPort) error {
	return HTTPGetCheck(HTTPGet{HTTPS: https, Path: path, Status: status, Digest: digest})
}

// HTTPGet is what an HTTP or HTTPS check asks and wants, as a keepalived
// HTTP_GET or SSL_GET url does.
type HTTPGet struct {
	HTTPS  bool
	Path   string
	Status int
	Digest string // the body's MD5 in hex, either case; "": not checked
	// VirtualHost, when set, is the Host header the GET carries instead
	// of the real server's address and port (keepalived's virtualhost),
	// so a server that picks its site by name answers for that site;
	// over TLS it is also the server name the handshake asks for.
	VirtualHost string
}

// HTTPGetCheck returns the check g describes: HTTPDigestCheck's, with the
// virtual host.
func HTTPGetCheck(g HTTPGet) func(ctx context.Context, addr netip.AddrPort) error {
	scheme := "http"
	if g.HTTPS {
		scheme = "https"
	}
	return httpCheck(scheme, g.Path, g.Status, strings.ToLower(g.Digest), g.VirtualHost)
}

func httpCheck(scheme, path string, status int, digest, vhost string) func(ctx context.Context, addr netip.AddrPort) error {
	tlsConf := &tls.Config{InsecureSkipVerify: true}
	if vhost != "" {
		// The server name without a port, as SNI carries it.
		name := vhost
		if h, _, err := net.SplitHostPort(vhost); err == nil {
			name = h
		}
		tlsConf.ServerName = name
	}
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(ctx context.Context, addr netip.AddrPort) error {
		req, err := http.NewRequestWithContext(ctx, "GET", scheme+"://"+addr.String()+path, nil)
		if err != nil {
			return err
		}
		if vhost != "" {
			req.Host = vhost
		}
		req.Header.Set("User-Agent", "afvs-healthcheck")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != status {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return fmt.Errorf("GET %s on %s: status %d, want %d", path, addr, resp.StatusCode, status)
		}
		if digest == "" {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil
		}
		// keepalived's digest is an MD5 sum, so MD5 it is: it tells a
		// changed page from the expected one, it protects nothing.
		h := md5.New()
		if _, err := io.Copy(h, resp.Body); err != nil {
			return fmt.Errorf("GET %s on %s: reading the body: %w", path, addr, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != digest {
			return fmt.Errorf("GET %s on %s: body MD5 %s, want %s", path, addr, got, digest)
		}
		return nil
	}
}

// ExecCheck returns a check that runs argv, as keepalived's MISC_CHECK
// runs its misc_path: the real server is up when the program exits 0
// before the check's timeout. In the arguments "{addr}" and "{port}"
// become the real server's address (bare, "2001:2::11" for IPv6) and
// port, and "{hostport}" both, as a dial string or URL authority takes
// them ("198.18.0.11:80", "[2001:2::11]:80"); the environment also
// carries the address and port as AFVS_REAL_ADDR and AFVS_REAL_PORT. The
// program runs in a process group of its own, and at the timeout the
// whole group is killed, so a script's children cannot outlive the check.
func ExecCheck(argv []string) func(ctx context.Context, addr netip.AddrPort) error {
	return func(ctx context.Context, addr netip.AddrPort) error {
		if len(argv) == 0 {
			return errors.New("exec check: no command")
		}
		args := make([]string, len(argv))
		for i, a := range argv {
			a = strings.ReplaceAll(a, "{hostport}", addr.String())
			a = strings.ReplaceAll(a, "{addr}", addr.Addr().String())
			args[i] = strings.ReplaceAll(a, "{port}", strconv.Itoa(int(addr.Port())))
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "AFVS_REAL_ADDR="+addr.Addr().String(), "AFVS_REAL_PORT="+strconv.Itoa(int(addr.Port())))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s for %s: no answer before the timeout", args[0], addr)
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return fmt.Errorf("%s for %s: %v: %s", args[0], addr, err, msg)
	}
}

// dialCheck connects to addr over network for a check whose every read
// and write must end by ctx's deadline (a second from now without one).
func dialCheck(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	_ = c.SetDeadline(deadline)
	return c, nil
}

// UDPCheck is keepalived's UDP_CHECK: it sends one datagram to the real
// server and fails only if an ICMP port-unreachable comes back; a reply or
// silence until the timeout passes. (Most UDP services do not answer an
// unknown datagram, so silence must count as alive.)
func UDPCheck(ctx context.Context, addr netip.AddrPort) error {
	c, err := dialCheck(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("afvs-healthcheck\n")); err != nil {
		return err
	}
	var b [1]byte
	_, err = c.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return fmt.Errorf("UDP %s: %w", addr, err)
}

// TCPCheck is keepalived's TCP_CHECK: a connect.
func TCPCheck(ctx context.Context, addr netip.AddrPort) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	return c.Close()
}

// down reports whether real server r of svc is known to be down. Unknown
// servers are up: a server is innocent until Fall checks fail.
func (h *health) down(svc *vs.Service, r *vs.Real) bool {
	if h == nil {
		return false
	}
	t, _, _, checked := h.plan(svc, r)
	if !checked {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.state[t]
	return ok && !st.up
}

// effective returns t with every down real server quiesced (weight 0) or,
// with HealthOptions.Remove, left out.
func (s *Server) effective(t *vs.Table) *vs.Table {
	h := s.health.Load()
	if h == nil {
		return t
	}
	opt := h.opts()
	e := t.Clone()
	for i := range e.Services {
		svc := &e.Services[i]
		down, n := 0, len(svc.Reals)
		kept := svc.Reals[:0]
		for j := range svc.Reals {
			r := svc.Reals[j]
			if h.down(svc, &r) {
				down++
				if opt.Remove {
					continue
				}
				r.Weight = 0
			}
			kept = append(kept, r)
		}
		svc.Reals = kept
		if down > 0 && down == n && opt.Sorry != nil {
			if sorry, ok := opt.Sorry(svc.Key); ok && svc.FindReal(sorry.Addr, sorry.Port) < 0 {
				svc.Reals = append(svc.Reals, sorry)
			}
		}
	}
	return e
}

// Up reports the health of real server r of svc: true when checks are
// off, the server has not been checked yet (or cannot be), or it passes.
func (s *Server) Up(svc *vs.Service, r *vs.Real) bool { return !s.health.Load().down(svc, r) }

// RunHealth checks every real server of the configured table until stop
// closes, and republishes the table whenever a server goes up or down.
//
// Each target (a real server of a service) is checked on its own schedule:
// its service's interval, or HealthOptions.Interval, after the start of
// its previous check, and never twice at once. A check's result counts as
// soon as it comes back, so a slow service's checks do not hold up another
// service's. SetHealth changes the options while it runs; with an Interval
// of 0 it idles, every server counted up, until SetHealth turns checks on.
// opt is the options it starts with unless SetHealth came first: a reload
// before the goroutine runs is not undone.
func (s *Server) RunHealth(opt HealthOptions, stop <-chan struct{}) {
	if o := normalize(opt); s.healthNext.CompareAndSwap(nil, &o) {
		s.wakeHealth()
	}
	type entry struct {
		last    time.Time // start of the latest check
		busy    bool      // a check is out
		seq     uint64    // the check out, or the latest one
		t       timing
		p       probe
		checked bool
	}
	type result struct {
		t   target
		seq uint64
		ok  bool
	}
	var (
		h       *health
		seq     uint64 // numbers the checks, so a stale result is known
		sched   = map[target]*entry{}
		res     = make(chan result, 64)
		timer   = time.NewTimer(time.Hour)
		pending bool // a change the director has refused so far
	)
	defer timer.Stop()
	wakeAt := time.Now().Add(time.Hour) // when timer fires
	setTimer := func(d time.Duration) {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(d, 0))
	}
	// republish applies the table with the current health, and remembers
	// a refusal to try again on the next wake-up.
	republish := func(onErr func(error)) {
		err := s.republish()
		pending = err != nil
		if err != nil && onErr != nil {
			onErr(err)
		}
	}
	for {
		select {
		case <-s.healthWake():
			opt := s.healthNext.Load()
			switch {
			case opt.Interval <= 0 && h != nil:
				// Off: forget every state, so the table goes back to the
				// configured weights, as it is when checks are off at start.
				s.health.Store(nil)
				h, sched = nil, map[target]*entry{}
				republish(opt.OnApplyError)
			case opt.Interval > 0 && h == nil:
				h = &health{state: map[target]*checkState{}}
				h.opt.Store(opt)
				s.health.Store(h)
			case opt.Interval > 0:
				// The up/down states and counts carry over; what changed
				// applies from the next check (intervals, from the next
				// scheduling: a shorter one may make a check due at once).
				h.opt.Store(opt)
				republish(opt.OnApplyError) // on_failure or sorry servers may differ
			}
		case r := <-res:
			if h == nil {
				break
			}
			changed := false
			for more := true; more; {
				// A result whose entry is gone (checks off, or the server
				// left the table) or was replaced does not count.
				if e := sched[r.t]; e != nil && e.busy && e.seq == r.seq {
					e.busy = false
					changed = h.count(r.t, r.ok, e.t) || changed
					if due := e.last.Add(e.t.interval); due.Before(wakeAt) {
						wakeAt = due
						setTimer(time.Until(due))
					}
				}
				select {
				case r = <-res:
				default:
					more = false
				}
			}
			if changed || pending {
				republish(h.opts().OnApplyError)
			}
			// The table is read again only when a check falls due: a
			// result alone starts nothing.
			continue
		case <-timer.C:
			if pending && h != nil {
				republish(h.opts().OnApplyError)
			}
		case <-stop:
			return
		}
		if h == nil {
			continue
		}
		// Follow the table and each service's settings, then start what
		// is due and sleep until the next check is.
		now := time.Now()
		tbl := s.Table()
		seen := make(map[target]bool, len(sched))
		for i := range tbl.Services {
			svc := &tbl.Services[i]
			for j := range svc.Reals {
				t, p, tm, ok := h.plan(svc, &svc.Reals[j])
				if !ok {
					continue
				}
				e := sched[t]
				if e == nil {
					e = &entry{}
					sched[t] = e
				}
				e.t, e.p, seen[t] = tm, p, true
			}
		}
		for t := range sched {
			if !seen[t] {
				delete(sched, t)
			}
		}
		h.forget(seen)
		next := now.Add(time.Hour)
		for t, e := range sched {
			if e.busy {
				continue
			}
			due := e.last.Add(e.t.interval)
			if !e.checked || !due.After(now) {
				seq++
				e.last, e.busy, e.checked, e.seq = now, true, true, seq
				go func(t target, p probe, timeout time.Duration, seq uint64) {
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					ok := p.dial(ctx, p.addr) == nil
					cancel()
					select {
					case res <- result{t, seq, ok}:
					case <-stop:
					}
				}(t, e.p, e.t.timeout, seq)
				continue
			}
			if due.Before(next) {
				next = due
			}
		}
		wakeAt = next
		setTimer(next.Sub(now))
	}
}

// SetHealth puts opt in force for RunHealth, as a reload does: checks
// turned off (Interval 0) forget every server's state and give the
// dataplane the configured weights back; otherwise every server keeps its
// up/down state and its count of successes or failures in a row, and the
// new intervals, timeouts, rise, fall and checks apply from its next
// check. Before RunHealth runs, it sets the options RunHealth starts with.
func (s *Server) SetHealth(opt HealthOptions) {
	o := normalize(opt)
	s.healthNext.Store(&o)
	s.wakeHealth()
}

func (s *Server) wakeHealth() {
	select {
	case s.healthWake() <- struct{}{}:
	default: // a wake-up is already waiting; it will read the latest options
	}
}

func (s *Server) healthWake() chan struct{} {
	s.healthOnce.Do(func() { s.healthCh = make(chan struct{}, 1) })
	return s.healthCh
}

// normalize fills in the default checks of opt; plan bounds the timing.
func normalize(opt HealthOptions) HealthOptions {
	if opt.Dial == nil {
		switch {
		case opt.Command != nil:
			opt.Dial = ExecCheck(opt.Command)
		case opt.HTTPPath != "":
			opt.Dial = HTTPGetCheck(HTTPGet{HTTPS: opt.HTTPS, Path: opt.HTTPPath, Status: opt.HTTPStatus, Digest: opt.HTTPDigest, VirtualHost: opt.HTTPVirtualHost})
		default:
			opt.Dial = TCPCheck
		}
	}
	if opt.UDPDial == nil {
		opt.UDPDial = UDPCheck
		if opt.Command != nil {
			opt.UDPDial = opt.Dial
		}
	}
	return opt
}

// count records one check's result for t under tm's rise and fall, and
// reports whether t went up or down.
func (h *health) count(t target, ok bool, tm timing) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.state[t]
	if st == nil {
		st = &checkState{up: true}
		h.state[t] = st
	}
	if ok {
		st.succ, st.fail = st.succ+1, 0
		if !st.up && st.succ >= tm.rise {
			st.up = true
			h.notify(t.addr, true)
			return true
		}
		return false
	}
	st.fail, st.succ = st.fail+1, 0
	if st.up && st.fail >= tm.fall {
		st.up = false
		h.notify(t.addr, false)
		return true
	}
	return false
}

// forget drops the state of targets no longer checked.
func (h *health) forget(keep map[target]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t := range h.state {
		if !keep[t] {
			delete(h.state, t)
		}
	}
}

func (h *health) notify(a netip.AddrPort, up bool) {
	if f := h.opts().OnChange; f != nil {
		f(a, up)
	}
}

// republish applies the configured table again with the current health.
func (s *Server) republish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.d.Apply(s.effective(s.table)); err != nil {
		return err
	}
	return nil
}
