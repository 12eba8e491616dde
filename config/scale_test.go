package config

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/vs"
)

// withReals is base() with its one service holding n real servers.
func withReals(n int) Config {
	c := base()
	c.Services[0].Reals = make([]RealConfig, n)
	for i := range c.Services[0].Reals {
		c.Services[0].Reals[i] = RealConfig{Address: fmt.Sprintf("198.18.%d.%d", i/256, i%256)}
	}
	return c
}

// tableWithReals is one service with n real servers, for vs.Table.Validate,
// which has no size limit of its own.
func tableWithReals(n int) *vs.Table {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr"}
	s.Normalize()
	s.Reals = make([]vs.Real, n)
	for i := range s.Reals {
		s.Reals[i] = vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)}), Port: 80, Weight: 1}
	}
	return &vs.Table{Services: []vs.Service{s}}
}

// cpuFastest is the least CPU time of a few runs of f, read from the
// thread's own clock with the goroutine locked to it: on a shared machine
// wall time also counts the time other processes had the CPU.
func cpuFastest(t *testing.T, runs int, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	now := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	best := time.Duration(1<<63 - 1)
	for range runs {
		start := now()
		f()
		best = min(best, now()-start)
	}
	return best
}

// TestValidateIsLinear: checking one service of n real servers costs
// about what checking 32 services of n/32 costs (one after the other),
// where a pairwise duplicate check costs 32 times as much. The bound
// leaves room for cache effects.
func TestValidateIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	small, large := withReals(vs.MaxDests/32), withReals(vs.MaxDests)
	for _, c := range []*Config{&small, &large} {
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	ds := cpuFastest(t, 5, func() {
		for range 32 {
			small.Validate()
		}
	})
	dl := cpuFastest(t, 5, func() { large.Validate() })
	t.Logf("config.Validate: 32 x %d reals %v, %d reals %v: ratio %.2f", vs.MaxDests/32, ds, vs.MaxDests, dl, float64(dl)/float64(ds))
	if r := float64(dl) / float64(ds); r > 4 {
		t.Errorf("config.Validate: %d real servers cost %.1f times 32 checks of %d", vs.MaxDests, r, vs.MaxDests/32)
	}

	ts, tl := tableWithReals(1024), tableWithReals(32768)
	for _, tb := range []*vs.Table{ts, tl} {
		if err := tb.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	ds = cpuFastest(t, 5, func() {
		for range 32 {
			ts.Validate()
		}
	})
	dl = cpuFastest(t, 5, func() { tl.Validate() })
	t.Logf("vs.Table.Validate: 32 x 1024 reals %v, 32768 reals %v: ratio %.2f", ds, dl, float64(dl)/float64(ds))
	if r := float64(dl) / float64(ds); r > 4 {
		t.Errorf("vs.Table.Validate: 32768 real servers cost %.1f times 32 checks of 1024", r)
	}
}

// TestDuplicateRealFoundAnywhere: the map-based check still finds a
// duplicate at any distance and names both entries.
func TestDuplicateRealFoundAnywhere(t *testing.T) {
	c := withReals(4000)
	c.Services[0].Reals[3999].Address = c.Services[0].Reals[7].Address
	err := c.Validate()
	if err == nil {
		t.Fatal("duplicate accepted")
	}
	for _, w := range []string{"services[0].reals[3999]", "198.18.0.7:80", "services[0].reals[7]"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	tb := tableWithReals(5000)
	tb.Services[0].Reals[4999] = tb.Services[0].Reals[1]
	if err := tb.Validate(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("vs.Table.Validate with a duplicate: %v", err)
	}
}

func BenchmarkValidateReals(b *testing.B) {
	for _, n := range []int{vs.MaxDests / 32, vs.MaxDests} {
		c := withReals(n)
		b.Run(fmt.Sprintf("config/reals=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := c.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, n := range []int{1024, 32768} {
		tb := tableWithReals(n)
		b.Run(fmt.Sprintf("table/reals=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := tb.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
