package vs

import (
	"fmt"
	"testing"
)

func realsOf(s Service) string {
	out := ""
	for _, r := range s.Reals {
		out += fmt.Sprintf(" %d", r.Addr.As4()[3])
	}
	return out
}

// TestKeepDestOrder: a reload keeps the order of addition of the real
// servers it keeps and appends new ones in file order; a service new to
// the table, or one with a duplicate real server (which Validate refuses),
// is left as the file has it.
func TestKeepDestOrder(t *testing.T) {
	mk := func(port uint16, lasts ...byte) Service {
		s := svc(port)
		for _, l := range lasts {
			s.Reals = append(s.Reals, real(l, 1))
		}
		return s
	}
	prev := &Table{Services: []Service{mk(80, 11, 12, 13), mk(81, 11, 12)}}
	next := &Table{Services: []Service{mk(80, 14, 13, 11, 15), mk(81, 12, 11, 12), mk(82, 13, 11)}}
	next.KeepDestOrder(prev)
	for i, want := range []string{" 11 13 14 15", " 12 11 12", " 13 11"} {
		if got := realsOf(next.Services[i]); got != want {
			t.Errorf("service %d: reals%s, want%s", i, got, want)
		}
	}
	if realsOf(prev.Services[0]) != " 11 12 13" {
		t.Errorf("prev changed: %s", realsOf(prev.Services[0]))
	}
}
