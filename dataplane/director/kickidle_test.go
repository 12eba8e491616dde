package director

import (
	"testing"

	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// TestWorkerKicksWhatABusyDeviceLeft: a Kick that sends only part of the
// TX ring (a busy device) leaves frames behind; the worker's next turns
// kick again although nothing more arrives, on its own socket and on
// another interface's, until every frame is sent.
func TestWorkerKicksWhatABusyDeviceLeft(t *testing.T) {
	for _, c := range []struct {
		name  string
		ports int
	}{{"same interface", 1}, {"other interface", 2}} {
		t.Run(c.name, func(t *testing.T) {
			w, ps, r := newTestWorker(t, vs.Route, c.ports)
			out := ps[c.ports-1]
			if c.ports == 2 {
				routeToSlot1(w, r)
			}
			for _, p := range ps {
				p.KickBudget = 10
			}
			const frames = 50
			for i := range frames {
				ps[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
			}
			if got := w.Poll(); got != frames {
				t.Fatalf("received %d, want %d", got, frames)
			}
			if got := out.Transmitted(); got != frames {
				t.Fatalf("%d of %d frames on the TX ring, want all", got, frames)
			}
			if !out.TxPending() {
				t.Fatalf("a KickBudget of 10 let all %d frames go at once: nothing tested", frames)
			}
			kicks := out.Kicks()
			for turn := 0; turn < 10 && out.TxPending(); turn++ {
				if got := w.Poll(); got != 0 {
					t.Fatalf("turn %d received %d frames, want none", turn, got)
				}
			}
			if out.TxPending() {
				t.Fatalf("frames still wait on the TX ring after ten idle turns (%d kicks)", out.Kicks()-kicks)
			}
			if k := out.Kicks() - kicks; k < (frames-10+9)/10 {
				t.Errorf("%d kicks sent the last %d frames 10 at a time", k, frames-10)
			}
			if w.sending {
				t.Errorf("every ring drained, but the worker still counts frames as waiting")
			}
			kicks = out.Kicks()
			w.Poll()
			if out.Kicks() != kicks {
				t.Errorf("an idle turn after the rings drained kicked again")
			}
		})
	}
}

var _ txPender = (*xsktest.Port)(nil)
