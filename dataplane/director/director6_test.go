package director_test

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/vs"
)

// TestDirectorUnreachableReal6: an IPv6 tunnel dest with no route is
// accepted, unreachable with the reason, and logged by its own address.
func TestDirectorUnreachableReal6(t *testing.T) {
	l := newLab(t, true)
	far := "2001:2:0:200::5"
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Tunnel, far)))
	ds := d.Snapshot().Services[0].Dests[0]
	if ds.Slot != -1 || !strings.Contains(ds.Unreachable, far) {
		t.Fatalf("dest %+v: want no slot and the reason", ds)
	}
	if log := l.log.String(); !strings.Contains(log, "real server unreachable") || !strings.Contains(log, "real="+far) {
		t.Fatalf("no warning naming the unreachable IPv6 real server %s:\n%s", far, log)
	}
}
