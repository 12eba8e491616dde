package dataplane

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/vs"
)

func TestICMPLimiterBurstThenRate(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewICMPLimiter(10, 3, clk) // one token every 100 ms, 3 at once
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(n int) int {
		k := 0
		for range n {
			if l.Allow([4]byte{198, 18, 0, 10}) {
				k++
			}
		}
		return k
	}
	if got := allowed(10); got != 3 {
		t.Fatalf("a full bucket allowed %d of 10, want the burst of 3", got)
	}
	clk.Advance(99 * time.Millisecond)
	if got := allowed(5); got != 0 {
		t.Fatalf("99 ms later %d allowed, want 0", got)
	}
	clk.Advance(time.Millisecond)
	if got := allowed(5); got != 1 {
		t.Fatalf("100 ms later %d allowed, want 1", got)
	}
	// A long quiet spell refills the bucket to the burst, not beyond.
	clk.Advance(time.Hour)
	if got := allowed(10); got != 3 {
		t.Fatalf("after an hour %d allowed, want 3", got)
	}
	// Over a steady stream the rate holds: 10 s at 10/s plus the burst.
	total := 0
	for range 1000 {
		clk.Advance(10 * time.Millisecond)
		total += allowed(1)
	}
	if total < 100 || total > 103 {
		t.Fatalf("%d allowed over 10 s at 10/s", total)
	}
	var nl *ICMPLimiter
	if !nl.Allow([4]byte{198, 18, 0, 10}) {
		t.Fatal("a nil limiter must allow everything")
	}
}

func TestICMPLimiterRejectsBadValues(t *testing.T) {
	for _, c := range []struct{ rate, burst int }{{0, 1}, {-1, 1}, {MaxICMPRate + 1, 1}, {1, 0}, {1, -5}} {
		if _, err := NewICMPLimiter(c.rate, c.burst, nil); err == nil {
			t.Errorf("rate %d burst %d accepted", c.rate, c.burst)
		}
	}
}

// TestICMPLimiterShared checks the bucket is exact when several workers
// draw from it at once: no more than the burst gets through at one instant.
func TestICMPLimiterShared(t *testing.T) {
	l, err := NewICMPLimiter(1, 64, &conntrack.ManualClock{})
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if l.Allow([4]byte{198, 18, 0, 10}) {
					got.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got.Load() != 64 {
		t.Fatalf("%d of 8000 allowed from a bucket of 64 with the clock stopped", got.Load())
	}
}

// TestProcessICMPRateLimited sends oversized DF packets through a TUN
// service: the limiter's burst gets ICMP replies, the rest are dropped and
// counted under their own reason.
func TestProcessICMPRateLimited(t *testing.T) {
	r := newRig(t, oneService(vs.Tunnel, "rr", 1), 1024)
	clk := &conntrack.ManualClock{}
	l, err := NewICMPLimiter(1, 2, clk)
	if err != nil {
		t.Fatal(err)
	}
	r.p.SetICMPLimiter(l)
	verdicts := map[Verdict]int{}
	for i := range 5 {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(6000+i), true, false, false, true, 1460)
		v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f))
		verdicts[v]++
	}
	if verdicts[VerdictReply] != 2 || verdicts[VerdictDrop] != 3 {
		t.Fatalf("verdicts %v, want 2 replies and 3 drops", verdicts)
	}
	if n := r.c.Drops[DropICMPLimited].Load(); n != 3 {
		t.Fatalf("%d counted as %s, want 3", n, DropICMPLimited)
	}
	if n := r.c.Drops[DropFragNeeded].Load(); n != 2 {
		t.Fatalf("%d counted as %s, want 2", n, DropFragNeeded)
	}
	clk.Advance(time.Second)
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 6100, true, false, false, true, 1460)
	if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictReply {
		t.Fatalf("a second later: verdict %d, want a reply", v)
	}
}

// TestICMPLimiterPerHost: with a per-destination limit one client gets its
// own burst and rate, and does not use up another client's.
func TestICMPLimiterPerHost(t *testing.T) {
	clk := &conntrack.ManualClock{}
	l, err := NewICMPLimiter(1000, 1000, clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.LimitPerHost(time.Second, 6); err != nil {
		t.Fatal(err)
	}
	a, b := [4]byte{198, 18, 0, 10}, [4]byte{198, 18, 0, 11}
	count := func(dst [4]byte, n int) int {
		k := 0
		for range n {
			if l.Allow(dst) {
				k++
			}
		}
		return k
	}
	if got := count(a, 20); got != 6 {
		t.Fatalf("client a got %d of 20 at once, want its burst of 6", got)
	}
	if got := count(b, 20); got != 6 {
		t.Fatalf("client b got %d of 20 after a used its burst, want 6 of its own", got)
	}
	clk.Advance(time.Second)
	if got := count(a, 5); got != 1 {
		t.Fatalf("a second later client a got %d, want 1", got)
	}
	for _, bad := range []struct {
		every time.Duration
		burst int
	}{{-time.Second, 6}, {2 * time.Hour, 6}, {time.Second, 0}} {
		if err := l.LimitPerHost(bad.every, bad.burst); err == nil {
			t.Errorf("LimitPerHost(%s, %d) accepted", bad.every, bad.burst)
		}
	}
	if err := l.LimitPerHost(0, 1); err != nil || count(a, 50) != 50 {
		t.Fatal("an interval of 0 does not turn the per-host limit off")
	}
}
