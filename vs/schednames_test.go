package vs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestCheckSched(t *testing.T) {
	if !slices.IsSorted(schedNames) {
		t.Fatalf("schedNames %v: not sorted; CheckSched searches it", schedNames)
	}
	for _, n := range schedNames {
		if err := CheckSched(n); err != nil {
			t.Errorf("CheckSched(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "nosuch", "WLC", "wlc ", "maglev"} {
		err := CheckSched(n)
		if !errors.Is(err, ErrSchedNotFound) {
			t.Errorf("CheckSched(%q) = %v, want ErrSchedNotFound", n, err)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "Scheduler or persistence engine not found: ") || !strings.Contains(msg, `"`+n+`"`) || !strings.Contains(msg, "wlc, wrr") {
			t.Errorf("CheckSched(%q) = %q: want ipvsadm's wording, the name and the known ones", n, msg)
		}
	}
	l := SchedNames()
	l[0] = "changed"
	if schedNames[0] == "changed" {
		t.Error("SchedNames hands out the list itself")
	}
}
