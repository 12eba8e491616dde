package control_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

// probes is a test check: it counts its calls per real server and fails
// for the servers marked failing.
type probes struct {
	mu      sync.Mutex
	calls   map[netip.AddrPort]int
	failing map[netip.AddrPort]bool
	events  []string // "addr down after N" / "addr up after N"
}

func newProbes() *probes {
	return &probes{calls: map[netip.AddrPort]int{}, failing: map[netip.AddrPort]bool{}}
}

func (p *probes) dial(_ context.Context, a netip.AddrPort) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[a]++
	if p.failing[a] {
		return errors.New("down")
	}
	return nil
}

func (p *probes) setFailing(a netip.AddrPort, f bool) {
	p.mu.Lock()
	p.failing[a] = f
	p.mu.Unlock()
}

func (p *probes) count(a netip.AddrPort) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[a]
}

// onChange records a transition with the number of checks the server had
// had then; a server is never checked twice at once, so that number is
// exactly the checks that led to it.
func (p *probes) onChange(a netip.AddrPort, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, a.String()+map[bool]string{true: " up after ", false: " down after "}[up]+strconv.Itoa(p.calls[a]))
}

func (p *probes) eventList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.events...)
}

func oneRealService(vip string, real string, weight int32) vs.Service {
	return vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr(vip), Port: 80}, Sched: "wrr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr(real), Port: 80, Weight: weight}}}
}

// startHealth runs srv.RunHealth(opt) until the test ends.
func startHealth(t *testing.T, srv *control.Server, opt control.HealthOptions) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		srv.RunHealth(opt, stop)
		close(done)
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// TestHealthPerServiceInterval: two services with different intervals,
// one its own, one the top-level one, each checked at its own rate.
func TestHealthPerServiceInterval(t *testing.T) {
	fast, slow := oneRealService("198.19.0.1", "198.18.0.11", 1), oneRealService("198.19.0.2", "198.18.0.12", 1)
	_, srv, _ := healthServer(t, fast, slow)
	p := newProbes()
	startHealth(t, srv, control.HealthOptions{Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 1, Fall: 1, Dial: p.dial,
		ForService: func(k vs.Key) (control.ServiceCheck, bool) {
			return control.ServiceCheck{Interval: 250 * time.Millisecond}, k == slow.Key
		}})
	time.Sleep(1500 * time.Millisecond)
	nf, ns := p.count(fast.Reals[0].AddrPort()), p.count(slow.Reals[0].AddrPort())
	// About 75 and 7; the bounds leave room for a loaded machine, and the
	// slow service must not be checked at the fast rate.
	t.Logf("in 1.5 s: %d checks at 20 ms, %d at 250 ms", nf, ns)
	if nf < 25 || ns < 2 || ns > 12 || nf < 4*ns {
		t.Fatalf("in 1.5 s: %d checks of the 20 ms service, %d of the 250 ms one", nf, ns)
	}
}

// TestHealthPerServiceRiseFall: a service's own fall and rise decide its
// real server's transitions while another service keeps the top-level
// ones.
func TestHealthPerServiceRiseFall(t *testing.T) {
	top, own := oneRealService("198.19.0.1", "198.18.0.11", 1), oneRealService("198.19.0.2", "198.18.0.12", 1)
	_, srv, _ := healthServer(t, top, own)
	p := newProbes()
	a, b := top.Reals[0].AddrPort(), own.Reals[0].AddrPort()
	p.setFailing(a, true)
	p.setFailing(b, true)
	startHealth(t, srv, control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 1, Fall: 2, Dial: p.dial,
		OnChange: p.onChange,
		ForService: func(k vs.Key) (control.ServiceCheck, bool) {
			return control.ServiceCheck{Rise: 3, Fall: 5}, k == own.Key
		}})
	waitEvents := func(n int) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if ev := p.eventList(); len(ev) >= n {
				return ev
			} else if time.Now().After(deadline) {
				t.Fatalf("events %v, want %d", ev, n)
			}
		}
	}
	ev := waitEvents(2)
	want := map[string]bool{a.String() + " down after 2": true, b.String() + " down after 5": true}
	if !want[ev[0]] || !want[ev[1]] || ev[0] == ev[1] {
		t.Fatalf("events %v, want %v", ev, want)
	}
	na, nb := p.count(a), p.count(b)
	p.setFailing(a, false)
	p.setFailing(b, false)
	ev = waitEvents(4)[2:]
	// Counts read before the checks passed may be a check short of the
	// failures seen: allow the one check in flight then.
	okUp := func(e string, addr netip.AddrPort, base, rise int) bool {
		return e == addr.String()+" up after "+strconv.Itoa(base+rise) || e == addr.String()+" up after "+strconv.Itoa(base+rise+1)
	}
	if !(okUp(ev[0], a, na, 1) && okUp(ev[1], b, nb, 3)) && !(okUp(ev[1], a, na, 1) && okUp(ev[0], b, nb, 3)) {
		t.Fatalf("up events %v; %s had %d checks before it passed (rise 1), %s %d (rise 3)", ev, a, na, b, nb)
	}
}

// weights is the dataplane's weight of each real server, by address.
func weights(d *controltest.Director) map[string]int32 {
	m := map[string]int32{}
	for _, s := range d.Snapshot().Table.Services {
		for _, r := range s.Reals {
			m[r.AddrPort().String()] = r.Weight
		}
	}
	return m
}

func waitWeights(t *testing.T, d *controltest.Director, want map[string]int32) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !maps.Equal(weights(d), want); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dataplane weights %v, want %v", weights(d), want)
		}
	}
}

// TestHealthSetKeepsState: new options (a longer interval, a larger fall
// and rise, a service's own timing) keep a down server down and an up
// server up, with no transition, and the new rise applies to the down
// one's return.
func TestHealthSetKeepsState(t *testing.T) {
	svc := oneRealService("198.19.0.1", "198.18.0.11", 3)
	svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr("198.18.0.12"), Port: 80, Weight: 2})
	d, srv, _ := healthServer(t, svc)
	p := newProbes()
	up, down := svc.Reals[0].AddrPort(), svc.Reals[1].AddrPort()
	p.setFailing(down, true)
	opt := control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 1, Fall: 1, Dial: p.dial, OnChange: p.onChange}
	startHealth(t, srv, opt)
	waitWeights(t, d, map[string]int32{up.String(): 3, down.String(): 0})
	// The up server now fails: at fall 1 it would go down at once, at the
	// new fall of 1000 it stays up. The down one passes: at rise 1 it
	// would come back at once, at the new rise of 4 only after 4 checks.
	opt.Interval, opt.Fall, opt.Rise = 10*time.Millisecond, 1000, 1
	opt.ForService = func(vs.Key) (control.ServiceCheck, bool) { return control.ServiceCheck{Rise: 4}, true }
	srv.SetHealth(opt)
	time.Sleep(50 * time.Millisecond) // let the loop take the options up
	before := p.count(down)
	p.setFailing(up, true)
	p.setFailing(down, false)
	waitEvents := func(n int) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if ev := p.eventList(); len(ev) >= n {
				return ev
			} else if time.Now().After(deadline) {
				t.Fatalf("events %v, want %d", ev, n)
			}
		}
	}
	ev := waitEvents(2)
	if ev[0] != down.String()+" down after 1" {
		t.Fatalf("first event %q", ev[0])
	}
	n := p.count(down)
	if ev[1] != down.String()+" up after "+strconv.Itoa(before+4) && ev[1] != down.String()+" up after "+strconv.Itoa(before+5) {
		t.Fatalf("events %v: %s had %d checks before it passed, want up after 4 more (rise 4)", ev, down, before)
	}
	waitWeights(t, d, map[string]int32{up.String(): 3, down.String(): 2})
	for deadline := time.Now().Add(5 * time.Second); p.count(up) < 20 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if ev := p.eventList(); len(ev) != 2 || p.count(up) < 20 {
		t.Fatalf("events %v after %d failing checks of %s at fall 1000 (and %d of %s)", ev, p.count(up), up, n, down)
	}
}

// TestHealthSetOffRestoresWeights: turning checks off (interval 0)
// gives every quiesced or removed server its configured weight back, and
// turning them on again checks from scratch.
func TestHealthSetOffRestoresWeights(t *testing.T) {
	for _, remove := range []bool{false, true} {
		t.Run(map[bool]string{false: "quiesce", true: "remove"}[remove], func(t *testing.T) {
			svc := oneRealService("198.19.0.1", "198.18.0.11", 3)
			svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr("198.18.0.12"), Port: 80, Weight: 2})
			d, srv, _ := healthServer(t, svc)
			p := newProbes()
			a, b := svc.Reals[0].AddrPort().String(), svc.Reals[1].AddrPort()
			p.setFailing(b, true)
			opt := control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: 5 * time.Millisecond, Rise: 1, Fall: 1, Dial: p.dial, Remove: remove}
			startHealth(t, srv, opt)
			failed := map[string]int32{a: 3, b.String(): 0}
			if remove {
				failed = map[string]int32{a: 3}
			}
			waitWeights(t, d, failed)
			off := opt
			off.Interval = 0
			srv.SetHealth(off)
			waitWeights(t, d, map[string]int32{a: 3, b.String(): 2})
			if !srv.Up(&svc, &svc.Reals[1]) {
				t.Fatal("Up reports a server down with checks off")
			}
			n := p.count(b)
			time.Sleep(50 * time.Millisecond)
			if m := p.count(b); m > n+1 { // one check may have been out
				t.Fatalf("%d checks after checks were turned off", m-n)
			}
			srv.SetHealth(opt)
			waitWeights(t, d, failed)
		})
	}
}

// TestHealthSharedRealPerService: a real server behind two services is
// checked once per service, at each service's rate and by each one's
// fall, and a failure in one leaves it up in the other.
func TestHealthSharedRealPerService(t *testing.T) {
	fast, slow := oneRealService("198.19.0.1", "198.18.0.11", 1), oneRealService("198.19.0.2", "198.18.0.11", 2)
	d, srv, _ := healthServer(t, fast, slow)
	pf, ps := newProbes(), newProbes()
	a := fast.Reals[0].AddrPort()
	ps.setFailing(a, true)
	startHealth(t, srv, control.HealthOptions{Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 1, Fall: 1,
		ForService: func(k vs.Key) (control.ServiceCheck, bool) {
			if k == slow.Key {
				return control.ServiceCheck{Dial: ps.dial, Interval: 250 * time.Millisecond, Fall: 2}, true
			}
			return control.ServiceCheck{Dial: pf.dial}, true
		}})
	byService := func() (f, s int32) {
		for _, svc := range d.Snapshot().Table.Services {
			switch svc.Key {
			case fast.Key:
				f = svc.Reals[0].Weight
			case slow.Key:
				s = svc.Reals[0].Weight
			}
		}
		return
	}
	start := time.Now()
	for deadline := start.Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if f, s := byService(); f == 1 && s == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("weights %d in the passing service, %d in the failing one", f, s)
		}
	}
	// Fall 2 at 250 ms: the second check is due 250 ms after the first.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("quiesced after %v: fall 2 at 250 ms takes at least 250 ms", took)
	}
	time.Sleep(time.Second)
	nf, ns := pf.count(a), ps.count(a)
	t.Logf("%d checks at 20 ms, %d at 250 ms", nf, ns)
	if nf < 4*ns || ns < 3 {
		t.Fatalf("%d checks for the 20 ms service, %d for the 250 ms one", nf, ns)
	}
	if f, s := byService(); f != 1 || s != 0 {
		t.Fatalf("weights %d in the passing service, %d in the failing one", f, s)
	}
}

// TestHealthStaleResultIgnored: a check still out when its server leaves
// the table does not count once the server is back and checked anew.
func TestHealthStaleResultIgnored(t *testing.T) {
	svc := oneRealService("198.19.0.1", "198.18.0.11", 1)
	svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr("198.18.0.12"), Port: 80, Weight: 1})
	_, srv, _ := healthServer(t, svc)
	y, x := svc.Reals[0], svc.Reals[1]
	p := newProbes()
	started, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	dial := func(ctx context.Context, a netip.AddrPort) error {
		err := p.dial(ctx, a)
		if a == x.AddrPort() {
			stale := false
			first.Do(func() { stale = true })
			if stale {
				close(started)
				<-release
				return errors.New("refused, long ago")
			}
		}
		return err
	}
	startHealth(t, srv, control.HealthOptions{Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1, Dial: dial, OnChange: p.onChange})
	<-started
	waitY := func(more int) {
		t.Helper()
		n := p.count(y.AddrPort())
		for deadline := time.Now().Add(5 * time.Second); p.count(y.AddrPort()) < n+more; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the checks stopped")
			}
		}
	}
	if err := srv.Update(func(tb *vs.Table) error { tb.Services[0].Reals = tb.Services[0].Reals[:1]; return nil }); err != nil {
		t.Fatal(err)
	}
	waitY(3) // the loop has seen the table without x
	if err := srv.Update(func(tb *vs.Table) error { tb.Services[0].Reals = append(tb.Services[0].Reals, x); return nil }); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); p.count(x.AddrPort()) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("x not checked again after it came back")
		}
	}
	close(release)
	waitY(5)
	if ev := p.eventList(); len(ev) != 0 {
		t.Fatalf("events %v: the stale failure counted", ev)
	}
}
