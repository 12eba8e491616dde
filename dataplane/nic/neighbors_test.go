package nic

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNeighSource plays the kernel: tests push events and see resolution
// requests.
type fakeNeighSource struct {
	mu         sync.Mutex
	existing   []NeighEvent
	subs       []*fakeSub
	failSubs   int // fail this many Subscribe calls
	resolves   chan neighKey
	resolveErr error
	// kernel, when set, is the kernel's usable entry that Resolve reports
	// (an entry whose event the cache never got).
	kernel *NeighEvent
}

type fakeSub struct {
	events chan<- NeighEvent
	done   <-chan struct{}
	closed bool
}

func newFakeNeighSource(existing ...NeighEvent) *fakeNeighSource {
	return &fakeNeighSource{existing: existing, resolves: make(chan neighKey, 1024)}
}

func (f *fakeNeighSource) Subscribe(events chan<- NeighEvent, done <-chan struct{}) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failSubs > 0 {
		f.failSubs--
		return errors.New("fake subscribe refused")
	}
	s := &fakeSub{events: events, done: done}
	f.subs = append(f.subs, s)
	for _, ev := range f.existing {
		events <- ev
	}
	go func() {
		<-done
		f.mu.Lock()
		defer f.mu.Unlock()
		if !s.closed {
			s.closed = true
			close(events)
		}
	}()
	return nil
}

func (f *fakeNeighSource) Resolve(ifindex int, ip netip.Addr) (NeighEvent, bool, error) {
	f.resolves <- neighKey{ifindex, ip}
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.kernel; k != nil && k.Ifindex == ifindex && k.IP == ip {
		return *k, true, f.resolveErr
	}
	return NeighEvent{}, false, f.resolveErr
}

// emit delivers ev on the newest subscription.
func (f *fakeNeighSource) emit(ev NeighEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.subs[len(f.subs)-1]
	if s.closed {
		return
	}
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// breakStream ends the newest subscription as an overflowing socket would.
func (f *fakeNeighSource) breakStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.subs[len(f.subs)-1]
	if !s.closed {
		s.closed = true
		close(s.events)
	}
}

func (f *fakeNeighSource) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	ipA  = netip.MustParseAddr("198.18.0.2")
	ipB  = netip.MustParseAddr("198.18.0.3")
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}
)

func TestNeighborsLookupStates(t *testing.T) {
	cases := []struct {
		name   string
		events []NeighEvent
		ok     bool
		mac    [6]byte
	}{
		{"reachable", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable}}, true, macA},
		{"stale", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudStale}}, true, macA},
		{"delay", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudDelay}}, true, macA},
		{"probe", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudProbe}}, true, macA},
		{"permanent", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudPermanent}}, true, macA},
		{"incomplete", []NeighEvent{{Ifindex: 2, IP: ipA, State: NudIncomplete}}, false, [6]byte{}},
		{"failed keeps no mac", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudFailed}}, false, [6]byte{}},
		{"noarp", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudNoARP}}, false, [6]byte{}},
		{"reachable with zero mac", []NeighEvent{{Ifindex: 2, IP: ipA, State: NudReachable}}, false, [6]byte{}},
		{"deleted", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable}, {Ifindex: 2, IP: ipA, Deleted: true}}, false, [6]byte{}},
		{"mac changes", []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable}, {Ifindex: 2, IP: ipA, MAC: macB, State: NudReachable}}, true, macB},
		{"other interface", []NeighEvent{{Ifindex: 3, IP: ipA, MAC: macA, State: NudReachable}}, false, [6]byte{}},
		{"mapped address", []NeighEvent{{Ifindex: 2, IP: netip.AddrFrom16(ipA.As16()), MAC: macA, State: NudReachable}}, true, macA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeNeighSource(tc.events...)
			changes := make(chan struct{}, 100)
			n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour, OnChange: func() { changes <- struct{}{} }})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			// A sentinel on another interface marks the end of the listing.
			src.emit(NeighEvent{Ifindex: 99, IP: ipB, MAC: macB, State: NudPermanent})
			eventually(t, time.Second, "sentinel", func() bool { _, ok := n.Lookup(99, ipB); return ok })
			mac, ok := n.Lookup(2, ipA)
			if ok != tc.ok || mac != tc.mac {
				t.Errorf("Lookup = %x, %v; want %x, %v", mac, ok, tc.mac, tc.ok)
			}
		})
	}
}

func TestNeighborsOnChange(t *testing.T) {
	src := newFakeNeighSource()
	var calls atomic.Int32
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour, OnChange: func() { calls.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sentinel := 100
	// settle emits a marker entry and waits for it, so that everything sent
	// before has been applied and its callback made.
	settle := func() {
		sentinel++
		src.emit(NeighEvent{Ifindex: sentinel, IP: ipB, State: NudIncomplete})
		eventually(t, time.Second, "marker", func() bool {
			n.mu.RLock()
			defer n.mu.RUnlock()
			_, ok := n.entries[neighKey{sentinel, ipB}]
			return ok
		})
	}
	steps := []struct {
		ev      NeighEvent
		changes int32
	}{
		{NeighEvent{Ifindex: 2, IP: ipA, State: NudIncomplete}, 0},           // still unknown
		{NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable}, 1}, // became usable
		{NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudStale}, 0},     // same answer
		{NeighEvent{Ifindex: 2, IP: ipA, MAC: macB, State: NudReachable}, 1}, // new MAC
		{NeighEvent{Ifindex: 2, IP: ipA, State: NudFailed}, 1},               // gone dead
		{NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudPermanent}, 1}, // back
		{NeighEvent{Ifindex: 2, IP: ipA, Deleted: true}, 1},                  // deleted
		{NeighEvent{Ifindex: 2, IP: ipA, Deleted: true}, 0},                  // deleted again
	}
	for i, s := range steps {
		before := calls.Load()
		src.emit(s.ev)
		settle()
		if got := calls.Load() - before; got != s.changes {
			t.Errorf("step %d (%+v): %d OnChange calls, want %d", i, s.ev, got, s.changes)
		}
	}
}

// TestNeighborsWant checks when Want and the refresh timer ask the kernel to
// resolve: for missing, STALE and FAILED entries, not for ones that are
// reachable or already being resolved.
func TestNeighborsWant(t *testing.T) {
	cases := []struct {
		state   uint16
		present bool
		nudge   bool
	}{
		{0, false, true},
		{NudNone, true, true},
		{NudStale, true, true},
		{NudFailed, true, true},
		{NudReachable, true, false},
		{NudPermanent, true, false},
		{NudIncomplete, true, false},
		{NudDelay, true, false},
		{NudProbe, true, false},
	}
	for _, tc := range cases {
		var existing []NeighEvent
		if tc.present {
			existing = append(existing, NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: tc.state})
		}
		src := newFakeNeighSource(existing...)
		n, err := NewNeighbors(src, NeighborsOptions{Refresh: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if tc.present {
			eventually(t, 10*time.Second, "listing", func() bool {
				n.mu.RLock()
				defer n.mu.RUnlock()
				_, ok := n.entries[neighKey{2, ipA}]
				return ok
			})
		}
		if err := n.Want(2, ipA); err != nil {
			t.Fatal(err)
		}
		// The count of requests tells both whether Want asked and
		// whether the timer keeps asking: three means at least two
		// refreshes. A busy machine may fire the timer late, so the wait
		// is for the count, not a fixed number of periods; where no
		// request is due, several periods pass and none may come.
		if tc.nudge {
			eventually(t, 10*time.Second, fmt.Sprintf("state %#x present=%v: an immediate resolution request and periodic repeats", tc.state, tc.present), func() bool {
				return len(src.resolves) >= 3
			})
		} else {
			time.Sleep(150 * time.Millisecond)
		}
		n.Close()
		if got := len(src.resolves); !tc.nudge && got != 0 {
			t.Errorf("state %#x: %d resolution requests, want none", tc.state, got)
		}
	}
}

func TestNeighborsRefreshStopsWhenReachable(t *testing.T) {
	src := newFakeNeighSource()
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Want(2, ipA); err != nil {
		t.Fatal(err)
	}
	if k := <-src.resolves; k != (neighKey{2, ipA}) {
		t.Fatalf("resolved %v, want %v", k, neighKey{2, ipA})
	}
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable})
	eventually(t, time.Second, "reachable", func() bool { _, ok := n.Lookup(2, ipA); return ok })
	time.Sleep(30 * time.Millisecond) // a request racing the event may still land
	for len(src.resolves) > 0 {
		<-src.resolves
	}
	time.Sleep(80 * time.Millisecond)
	if got := len(src.resolves); got != 0 {
		t.Errorf("%d resolution requests for a reachable neighbour", got)
	}
	// Going STALE brings the requests back; Forget ends them.
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudStale})
	select {
	case <-src.resolves:
	case <-time.After(time.Second):
		t.Fatal("no resolution request for a STALE wanted neighbour")
	}
	n.Forget(2, ipA)
	time.Sleep(30 * time.Millisecond)
	for len(src.resolves) > 0 {
		<-src.resolves
	}
	time.Sleep(80 * time.Millisecond)
	if got := len(src.resolves); got != 0 {
		t.Errorf("%d resolution requests after Forget", got)
	}
}

// TestNeighborsCatchUpOnLostEvent: the cache holds a wanted next hop
// FAILED while the kernel has it REACHABLE (the event that made it so was
// lost, or the entry's change raced the cache's subscription). The refresh
// asks the kernel, which reports its entry; the cache takes it, calls
// OnChange, and stops asking. Before, Resolve saw the REACHABLE entry, did
// nothing, and the next hop stayed unresolved for good.
func TestNeighborsCatchUpOnLostEvent(t *testing.T) {
	src := newFakeNeighSource(NeighEvent{Ifindex: 2, IP: ipA, State: NudFailed})
	changed := make(chan struct{}, 16)
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: 10 * time.Millisecond, OnChange: func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	src.mu.Lock()
	src.kernel = &NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable}
	src.mu.Unlock()
	if err := n.Want(2, ipA); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "the kernel's reachable entry", func() bool {
		mac, ok := n.Lookup(2, ipA)
		return ok && mac == macA
	})
	select {
	case <-changed:
	case <-time.After(time.Second):
		t.Fatal("no OnChange when the cache caught up")
	}
	// A usable cache entry is not replaced by the kernel's answer.
	src.mu.Lock()
	src.kernel = &NeighEvent{Ifindex: 2, IP: ipA, MAC: [6]byte{2, 0, 0, 0, 0, 0x99}, State: NudStale}
	src.mu.Unlock()
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudStale})
	time.Sleep(50 * time.Millisecond)
	if mac, ok := n.Lookup(2, ipA); !ok || mac != macA {
		t.Fatalf("lookup %x %v: a usable entry was replaced by a Resolve answer", mac, ok)
	}
}

func TestNeighborsWantErrors(t *testing.T) {
	src := newFakeNeighSource()
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bad := []struct {
		ifindex int
		ip      netip.Addr
		want    string
	}{
		{0, ipA, "ifindex 0 must be positive"},
		{-3, ipA, "ifindex -3 must be positive"},
		{2, netip.Addr{}, "address is not set"},
		{2, netip.MustParseAddr("0.0.0.0"), "address 0.0.0.0 must be a unicast"},
		{2, netip.MustParseAddr("224.0.0.5"), "address 224.0.0.5 must be a unicast"},
		{2, netip.MustParseAddr("127.0.0.1"), "address 127.0.0.1 must be a unicast, non-loopback"},
	}
	for _, tc := range bad {
		if err := n.Want(tc.ifindex, tc.ip); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Want(%d, %v) = %v, want error containing %q", tc.ifindex, tc.ip, err, tc.want)
		}
	}
	src.mu.Lock()
	src.resolveErr = errors.New("no such device")
	src.mu.Unlock()
	if err := n.Want(7, ipA); err == nil || !strings.Contains(err.Error(), "want neighbour 198.18.0.2 on ifindex 7: no such device") {
		t.Errorf("Want with a failing source = %v", err)
	}
	if _, err := NewNeighbors(nil, NeighborsOptions{}); err == nil {
		t.Error("NewNeighbors(nil) succeeded")
	}
	if _, err := NewNeighbors(src, NeighborsOptions{Refresh: -time.Second}); err == nil || !strings.Contains(err.Error(), "refresh interval -1s must not be negative") {
		t.Errorf("negative refresh: %v", err)
	}
	failing := newFakeNeighSource()
	failing.failSubs = 1
	if _, err := NewNeighbors(failing, NeighborsOptions{}); err == nil || !strings.Contains(err.Error(), "fake subscribe refused") {
		t.Errorf("failing first subscription: %v", err)
	}
}

// TestNeighborsResubscribe: a broken stream may have lost events, so the
// cache empties, tells OnChange, and rebuilds from a new listing, retrying
// subscriptions that fail.
func TestNeighborsResubscribe(t *testing.T) {
	src := newFakeNeighSource(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable})
	var calls atomic.Int32
	var errs atomic.Int32
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour, OnChange: func() { calls.Add(1) }, OnError: func(error) { errs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	eventually(t, time.Second, "initial listing", func() bool { _, ok := n.Lookup(2, ipA); return ok })
	src.mu.Lock()
	src.existing = []NeighEvent{{Ifindex: 2, IP: ipA, MAC: macB, State: NudReachable}}
	src.failSubs = 2
	src.mu.Unlock()
	before := calls.Load()
	src.breakStream()
	eventually(t, 5*time.Second, "new listing", func() bool { mac, ok := n.Lookup(2, ipA); return ok && mac == macB })
	if got := src.subscriptions(); got != 2 {
		t.Errorf("%d successful subscriptions, want 2", got)
	}
	if errs.Load() != 2 {
		t.Errorf("OnError heard %d failures, want 2", errs.Load())
	}
	if calls.Load()-before < 2 {
		t.Errorf("OnChange called %d times across the break, want the emptying and the refill", calls.Load()-before)
	}
}

func TestNeighborsCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 5 {
		src := newFakeNeighSource(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable})
		n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Want(2, ipB); err != nil {
			t.Fatal(err)
		}
		go src.emit(NeighEvent{Ifindex: 3, IP: ipA, MAC: macA, State: NudReachable})
		time.Sleep(5 * time.Millisecond)
		n.Close()
		n.Close()
	}
	eventually(t, 2*time.Second, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestNeighborsLookupAllocs(t *testing.T) {
	src := newFakeNeighSource(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable})
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	eventually(t, time.Second, "listing", func() bool { _, ok := n.Lookup(2, ipA); return ok })
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := n.Lookup(2, ipA); !ok {
			panic("entry vanished")
		}
		n.Lookup(2, ipB)
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %.1f times per call, want 0", allocs)
	}
}

func BenchmarkNeighborsLookup(b *testing.B) {
	for _, size := range []int{10, 10000} {
		b.Run("entries="+strconv.Itoa(size), func(b *testing.B) {
			var evs []NeighEvent
			base := ipA.As4()
			for i := range size {
				a := base
				a[2], a[3] = byte(i>>8), byte(i)
				evs = append(evs, NeighEvent{Ifindex: 2, IP: netip.AddrFrom4(a), MAC: macA, State: NudReachable})
			}
			src := newFakeNeighSource(evs[:min(len(evs), 200)]...)
			n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			for _, ev := range evs[min(len(evs), 200):] {
				src.emit(ev)
			}
			last := evs[len(evs)-1].IP
			for {
				if _, ok := n.Lookup(2, last); ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n.Lookup(2, evs[i].IP)
				i++
				if i == len(evs) {
					i = 0
				}
			}
		})
	}
}

// TestNeighborsAskAgainWhenLost: a wanted neighbour that was usable and is
// deleted (as by a flush) or goes FAILED is asked for again at once, not
// at the refresh's next tick (an hour here); an unwanted one, or one
// that was never usable, is not.
func TestNeighborsAskAgainWhenLost(t *testing.T) {
	src := newFakeNeighSource()
	n, err := NewNeighbors(src, NeighborsOptions{Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Want(2, ipA); err != nil {
		t.Fatal(err)
	}
	<-src.resolves
	quiet := func(what string) {
		t.Helper()
		select {
		case k := <-src.resolves:
			t.Errorf("%s: resolution request for %v", what, k)
		case <-time.After(100 * time.Millisecond):
		}
	}
	asked := func(what string) {
		t.Helper()
		select {
		case k := <-src.resolves:
			if k != (neighKey{2, ipA}) {
				t.Errorf("%s: asked for %v, want %v", what, k, neighKey{2, ipA})
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no resolution request", what)
		}
	}
	reachable := func() {
		t.Helper()
		src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudReachable})
		eventually(t, 5*time.Second, "reachable", func() bool { _, ok := n.Lookup(2, ipA); return ok })
	}
	// Never usable: FAILED from INCOMPLETE waits for the tick.
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, State: NudIncomplete})
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, State: NudFailed})
	quiet("failed before it was ever usable")
	reachable()
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, Deleted: true})
	asked("deleted while usable")
	reachable()
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudFailed})
	asked("failed while usable")
	// Usable STALE is no loss; an unwanted neighbour is nobody's concern.
	reachable()
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, MAC: macA, State: NudStale})
	src.emit(NeighEvent{Ifindex: 2, IP: ipB, MAC: macB, State: NudReachable})
	src.emit(NeighEvent{Ifindex: 2, IP: ipB, Deleted: true})
	quiet("stale, or an unwanted neighbour deleted")
	n.Forget(2, ipA)
	src.emit(NeighEvent{Ifindex: 2, IP: ipA, Deleted: true})
	quiet("deleted after Forget")
}
