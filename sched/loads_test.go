package sched

import (
	"testing"
	"unsafe"
)

// TestOverloadHysteresis walks the -x/-y rules of ip_vs_bind_dest and
// ip_vs_unbind_dest: set at total >= upper on bind; cleared on unbind below
// lower, or below 3/4 of upper when there is no lower.
func TestOverloadHysteresis(t *testing.T) {
	type op struct {
		bind   bool // else unbind
		active bool
		over   bool // flag afterwards
	}
	cases := []struct {
		name         string
		upper, lower uint32
		ops          []op
	}{
		{"upper only: clear below 3/4", 4, 0, []op{
			{true, true, false}, {true, false, false}, {true, true, false}, {true, true, true}, // 4 >= 4
			{false, true, true},   // 3*4 = 12 < 12? no
			{false, false, false}, // 2*4 = 8 < 12
		}},
		{"upper and lower", 3, 1, []op{
			{true, true, false}, {true, true, false}, {true, true, true},
			{false, true, true}, {false, true, true}, // total 1, not < 1
			{false, true, false},
		}},
		{"no thresholds", 0, 0, []op{{true, true, false}, {false, true, false}}},
	}
	for _, c := range cases {
		l := NewLoads(1)
		l.SetThresholds(0, c.upper, c.lower)
		for i, o := range c.ops {
			if o.bind {
				l.Bind(0, o.active)
			} else {
				l.Unbind(0, o.active)
			}
			if got := l.Overloaded(0); got != o.over {
				t.Fatalf("%s: op %d: overloaded %v, want %v (active %d inactive %d)", c.name, i, got, o.over, l.Active(0), l.Inactive(0))
			}
		}
	}
}

func TestSetThresholdsClearsOnRaise(t *testing.T) {
	l := NewLoads(1)
	l.SetThresholds(0, 2, 0)
	l.Bind(0, true)
	l.Bind(0, true)
	if !l.Overloaded(0) {
		t.Fatal("not overloaded at upper threshold")
	}
	l.SetThresholds(0, 2, 1) // same upper: kept, as __ip_vs_update_dest
	if !l.Overloaded(0) {
		t.Fatal("re-setting the same upper threshold cleared the flag")
	}
	l.SetThresholds(0, 5, 0) // raised: cleared
	if l.Overloaded(0) {
		t.Fatal("raising the upper threshold kept the flag")
	}
	l.Transfer(0, false)
	if l.Active(0) != 1 || l.Inactive(0) != 1 {
		t.Fatalf("transfer: active %d inactive %d", l.Active(0), l.Inactive(0))
	}
	l.Reset(0)
	if l.Active(0) != 0 || l.Inactive(0) != 0 || l.Overloaded(0) {
		t.Fatal("reset left state behind")
	}
}

func TestLoadsIgnoreBadIDs(t *testing.T) {
	l := NewLoads(2)
	l.Bind(7, true)
	l.Unbind(1<<31, false)
	l.Transfer(2, true)
	l.SetThresholds(99, 1, 0)
	l.Reset(3)
	if l.Active(7) != 0 || l.Overloaded(7) || NewLoads(-5).Len() != 0 {
		t.Fatal("out-of-range id had an effect")
	}
}

// TestDestLoadLine: one real server's counters fill a cache line, so that
// two servers' counters never share one.
func TestDestLoadLine(t *testing.T) {
	if s := unsafe.Sizeof(destLoad{}); s != 64 {
		t.Fatalf("destLoad is %d bytes, want 64", s)
	}
}
