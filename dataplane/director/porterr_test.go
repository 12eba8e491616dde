package director

import (
	"errors"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// failingPort is a fake port whose Kick and Wait fail, as a socket whose
// device went away does.
type failingPort struct {
	*xsktest.Port
	waits int
}

func (p *failingPort) Kick() error { return errors.New("kick tx on xsk fd 9: no such device") }
func (p *failingPort) Wait(time.Duration) error {
	p.waits++
	return errors.New("poll xsk fd 9: bad file descriptor")
}

// TestWorkerCountsPortErrors: a failed Kick after a batch and a failed
// Wait while idle are counted, and the worker goes on.
func TestWorkerCountsPortErrors(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	fp := &failingPort{Port: ps[0]}
	w.rx, w.tx[0].Port = fp, fp
	for i := 0; i < 3; i++ {
		ps[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0))
	}
	w.Poll()
	if got := r.c.TX.Load(); got != 3 {
		t.Fatalf("%d frames queued for sending, want 3", got)
	}
	if got := r.c.PortErrors.Load(); got != 1 {
		t.Fatalf("port errors %d after one failed Kick, want 1", got)
	}
	// Idle with a socket that cannot be polled: Run counts each failed
	// Wait, sleeps instead, and still stops.
	done := make(chan struct{})
	go func() { w.Run(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for r.c.PortErrors.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	w.Stop()
	<-done
	if got := r.c.PortErrors.Load(); got < 3 {
		t.Fatalf("port errors %d after an idle second on a broken socket, want at least 3", got)
	}
	var tot dataplane.Totals
	tot.Add(r.c)
	if tot.PortErrors != r.c.PortErrors.Load() {
		t.Fatalf("Totals.PortErrors %d, counter %d", tot.PortErrors, r.c.PortErrors.Load())
	}
}
