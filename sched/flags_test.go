package sched

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		sched, in string
		want      Flags
		names     []string
		err       string // substring of the error; "" = success
	}{
		{"sh", "sh-fallback,sh-port", FlagSHFallback | FlagSHPort, []string{"sh-fallback", "sh-port"}, ""},
		{"mh", "mh-port", FlagMHPort, []string{"mh-port"}, ""},
		{"wlc", "flag-1,flag-3", FlagSched1 | FlagSched3, []string{"flag-1", "flag-3"}, ""},
		{"", "flag-2", FlagSched2, []string{"flag-2"}, ""},
		{"sh", "flag-1,,sh-port", FlagSched1 | FlagSched2, []string{"sh-fallback", "sh-port"}, ""},
		{"rr", "sh-port", 0, nil, `"sh-port": valid only with scheduler "sh"`},
		{"sh", "mh-port", 0, nil, `"mh-port": valid only with scheduler "mh"`},
		{"sh", "sh-bogus", 0, nil, `"sh-bogus": not a flag of scheduler "sh"`},
		{"wlc", "flag-4", 0, nil, `"flag-4": unknown`},
		{"wlc", "", 0, nil, "empty list"},
		{"wlc", ",", 0, nil, "empty list"},
	}
	for _, c := range cases {
		got, err := ParseFlags(c.sched, c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseFlags(%q, %q) error %v, want %q", c.sched, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseFlags(%q, %q) = %#x, %v; want %#x", c.sched, c.in, got, err, c.want)
			continue
		}
		if n := got.Names(c.sched); !slices.Equal(n, c.names) {
			t.Errorf("Names(%q) = %v, want %v", c.sched, n, c.names)
		}
	}
}

func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"sh-fallback,sh-port", "flag-1", "", ",,", "mh-x"} {
		f.Add("sh", s)
		f.Add("mh", s)
	}
	f.Fuzz(func(t *testing.T, sched, s string) {
		fl, err := ParseFlags(sched, s)
		if err != nil {
			return
		}
		// Names must round-trip.
		sc := sched
		if sc == "" {
			sc = "wlc"
		}
		again, err := ParseFlags(sched, strings.Join(fl.Names(sc), ","))
		if err != nil || again != fl {
			t.Fatalf("round trip of %#x via %v: %#x, %v", fl, fl.Names(sc), again, err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	loads := NewLoads(4)
	cases := []struct {
		name  string
		dests []Dest
		flags Flags
		loads *Loads
		err   string
	}{
		{"bogus", nil, 0, loads, `scheduler "bogus": unknown (known: dh, fo, lblc, lblcr, lc, mh, nq, ovf, rr, sed, sh, twos, wlc, wrr)`},
		{"wlc", []Dest{{ID: 9}}, 0, loads, "id 9 out of range: loads holds 4 ids"},
		{"wlc", []Dest{{ID: 1}, {ID: 1}}, 0, loads, "id 1 already used by dest 0"},
		{"wlc", []Dest{{ID: 1, Weight: -2}}, 0, loads, "weight -2: must be >= 0"},
		{"wlc", []Dest{{ID: 1, Upper: 3, Lower: 5}}, 0, loads, "lower threshold 5 above upper threshold 3"},
		{"wlc", []Dest{{ID: 1, Lower: 2}}, 0, loads, "lower threshold 2 above upper threshold 0"},
		{"wlc", nil, 0x40, loads, "unknown bits 0x40"},
		{"wlc", nil, 0, nil, "nil loads"},
	}
	for _, c := range cases {
		_, err := New(c.name, c.dests, c.flags, c.loads, Options{})
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("New(%q, %+v): error %v, want %q", c.name, c.dests, err, c.err)
		}
	}
}

// TestEmptyService: every scheduler over no dests returns -1 rather than
// panicking.
func TestEmptyService(t *testing.T) {
	var f Flow
	for _, name := range Names() {
		s, err := New(name, nil, FlagSched1|FlagSched2, NewLoads(0), Options{MaglevSize: 251})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := s.Schedule(&f); got != -1 {
			t.Errorf("%s over no dests picked %d", name, got)
		}
		if s.Name() != name {
			t.Errorf("Name() = %q, want %q", s.Name(), name)
		}
	}
}
