package xsk

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBusyPoll sets the busy-poll options on a real socket, reads them
// back from the kernel, checks that an empty Receive then drives the
// device with a recvfrom (and not without them), that frames still arrive,
// and that turning them off clears them.
func TestBusyPoll(t *testing.T) {
	p := newPair(t)
	s := openA(t, p, testOptions())
	attachRedirect(t, p, s.FD())
	s.Fill()
	get := func(opt int) int {
		v, err := unix.GetsockoptInt(s.FD(), unix.SOL_SOCKET, opt)
		if err != nil {
			t.Fatalf("getsockopt %d: %v", opt, err)
		}
		return v
	}
	if b := s.BusyPoll(); b.On() || b.String() != "off" {
		t.Fatalf("a new socket's busy poll = %v, want off", b)
	}
	var out [64]Desc
	w0 := s.Counters().RxWakeups
	s.Receive(out[:])
	if w := s.Counters().RxWakeups - w0; w != 0 && !s.fill.needWakeup() {
		t.Errorf("an empty Receive without busy polling made %d recvfrom calls, want 0", w)
	}

	b := s.SetBusyPoll(true, 20, 64)
	if !b.On() {
		t.Skipf("this kernel refuses every busy-poll option: %v", b)
	}
	if b.Usecs != 20 || get(unix.SO_BUSY_POLL) != 20 {
		t.Errorf("SO_BUSY_POLL: accepted %d, kernel reads %d; want 20", b.Usecs, get(unix.SO_BUSY_POLL))
	}
	if b.Prefer != (get(unix.SO_PREFER_BUSY_POLL) == 1) {
		t.Errorf("SO_PREFER_BUSY_POLL: reported %v, kernel reads %d", b.Prefer, get(unix.SO_PREFER_BUSY_POLL))
	}
	// SO_BUSY_POLL_BUDGET cannot be read back (getsockopt does not know
	// it); the kernel's answer to the set is all there is.
	if b.Budget != 0 && b.Budget != 64 {
		t.Errorf("SO_BUSY_POLL_BUDGET: reported %d, want 64 or 0 (refused)", b.Budget)
	}
	if s.BusyPoll() != b {
		t.Errorf("BusyPoll() = %v, want %v", s.BusyPoll(), b)
	}
	w0 = s.Counters().RxWakeups
	if n := s.Receive(out[:]); n != 0 {
		t.Fatalf("received %d frames before any was sent", n)
	}
	if w := s.Counters().RxWakeups - w0; w != 1 {
		t.Errorf("an empty Receive with busy polling made %d recvfrom calls, want 1", w)
	}
	if a := testing.AllocsPerRun(100, func() { s.Receive(out[:]) }); a != 0 {
		t.Errorf("an empty Receive with busy polling allocates %v times", a)
	}

	tx := openPacket(t, p.nsB, p.ifB)
	const n = 10
	for i := 0; i < n; i++ {
		tx.send(t, testFrame(p.macA, p.macB, uint32(i), frameLen(uint32(i))))
	}
	for _, d := range receiveN(t, s, n, 5*time.Second) {
		s.Release(d.Addr)
	}

	if off := s.SetBusyPoll(false, 20, 64); off.On() || get(unix.SO_BUSY_POLL) != 0 || get(unix.SO_PREFER_BUSY_POLL) != 0 {
		t.Errorf("after SetBusyPoll(false): %v, kernel reads busy_poll %d prefer %d; want all off", off, get(unix.SO_BUSY_POLL), get(unix.SO_PREFER_BUSY_POLL))
	}
	checkAccount(t, s)
}
