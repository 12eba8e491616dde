package director

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/vs"
)

// script drives a Loop with a fake clock: each turn advances the clock by
// step, poll returns the scripted frame counts (then 0), and the loop
// stops after turns turns. It records which turns ended in a wait.
type script struct {
	step   time.Duration
	frames []int
	turns  int

	now   time.Duration
	turn  int
	waits []int // turn numbers after which the loop waited
	stop  atomic.Bool
}

func (s *script) run(t *testing.T, c PollConfig) {
	t.Helper()
	var cfg atomic.Pointer[PollConfig]
	cfg.Store(&c)
	var sleeps atomic.Uint64
	l := Loop{Stop: &s.stop, Config: &cfg, Sleeps: &sleeps,
		Now: func() time.Duration { return s.now },
		Poll: func() int {
			s.turn++
			s.now += s.step
			if s.turn >= s.turns {
				s.stop.Store(true)
			}
			if s.turn-1 < len(s.frames) {
				return s.frames[s.turn-1]
			}
			return 0
		},
		Wait: func(d time.Duration) error {
			if d <= 0 || d > waitBound {
				t.Errorf("wait(%v): must be bounded by waitBound %v", d, waitBound)
			}
			s.waits = append(s.waits, s.turn)
			s.now += d
			return nil
		},
	}
	l.Run()
	if int(sleeps.Load()) != len(s.waits) {
		t.Errorf("Sleeps = %d, want %d", sleeps.Load(), len(s.waits))
	}
}

// TestLoopAdaptive: adaptive polls without waiting while frames come and
// for spin after the last one, then waits at every empty turn.
func TestLoopAdaptive(t *testing.T) {
	s := &script{step: time.Microsecond, frames: []int{0, 5, 5, 5}, turns: 100}
	s.run(t, PollConfig{Mode: PollAdaptive, Spin: 10 * time.Microsecond})
	// Turn 1 is empty but the spin counts from the loop's start (clock 0,
	// now 1us); frames at turns 2-4; turn 5 is the first empty turn after
	// them (clock 5us); the spin of 10us runs out at turn 15.
	if len(s.waits) == 0 || s.waits[0] != 15 {
		t.Fatalf("first wait after turn %v, want 15 (10us of spin after the last frame)", s.waits)
	}
	for i, w := range s.waits {
		if w != 15+i {
			t.Fatalf("waits after turns %v: once idle past the spin, every empty turn must wait", s.waits)
		}
	}
	if len(s.waits) != 100-14 {
		t.Errorf("%d waits, want %d", len(s.waits), 100-14)
	}
}

// TestLoopAdaptiveSpinResets: a frame during the spin starts it again.
func TestLoopAdaptiveSpinResets(t *testing.T) {
	frames := make([]int, 30)
	frames[0], frames[8] = 1, 1 // the second frame arrives 8us into the spin
	s := &script{step: time.Microsecond, frames: frames, turns: 40}
	s.run(t, PollConfig{Mode: PollAdaptive, Spin: 10 * time.Microsecond})
	// Empty from turn 10 (clock 10us): the wait comes at clock 20us.
	if len(s.waits) == 0 || s.waits[0] != 20 {
		t.Fatalf("first wait after turn %v, want 20", s.waits)
	}
}

// TestLoopBusy: busy never waits.
func TestLoopBusy(t *testing.T) {
	s := &script{step: time.Millisecond, frames: []int{3}, turns: 10000}
	s.run(t, PollConfig{Mode: PollBusy, Spin: time.Microsecond})
	if len(s.waits) != 0 || s.turn != 10000 {
		t.Fatalf("busy: %d turns, waits after %v; want 10000 turns and no wait", s.turn, s.waits)
	}
}

// TestLoopSleep: sleep waits at every empty turn, never after a turn
// with frames.
func TestLoopSleep(t *testing.T) {
	s := &script{step: time.Nanosecond, frames: []int{1, 0, 2, 2, 0}, turns: 8}
	s.run(t, PollConfig{Mode: PollSleep, Spin: time.Second})
	want := []int{2, 5, 6, 7, 8}
	if len(s.waits) != len(want) {
		t.Fatalf("sleep: waits after turns %v, want %v", s.waits, want)
	}
	for i := range want {
		if s.waits[i] != want[i] {
			t.Fatalf("sleep: waits after turns %v, want %v", s.waits, want)
		}
	}
}

// TestLoopFollowsConfig: a mode stored while the loop runs takes effect
// at the next empty turn.
func TestLoopFollowsConfig(t *testing.T) {
	var cfg atomic.Pointer[PollConfig]
	busy := PollConfig{Mode: PollBusy}
	cfg.Store(&busy)
	var stop atomic.Bool
	turns, waits := 0, 0
	l := Loop{Stop: &stop, Config: &cfg, Now: func() time.Duration { return 0 },
		Poll: func() int {
			turns++
			if turns == 50 {
				sl := PollConfig{Mode: PollSleep}
				cfg.Store(&sl)
			}
			return 0
		},
		Wait: func(time.Duration) error {
			waits++
			if turns != 49+waits {
				t.Errorf("wait %d after turn %d, want turn %d", waits, turns, 49+waits)
			}
			if waits == 3 {
				stop.Store(true)
			}
			return nil
		},
	}
	l.Run()
	if waits != 3 {
		t.Fatalf("%d waits, want 3", waits)
	}
}

// TestLoopWaitFailure: a failing Wait is replaced by a sleep of
// waitBound, so a broken socket neither spins nor blocks Stop.
func TestLoopWaitFailure(t *testing.T) {
	var stop atomic.Bool
	c := PollConfig{Mode: PollSleep}
	calls := 0
	start := time.Now()
	Spin(&stop, c, func() int { return 0 }, func(time.Duration) error {
		calls++
		if calls == 3 {
			stop.Store(true)
		}
		return errTest
	})
	if el := time.Since(start); el < 2*waitBound {
		t.Fatalf("3 failed waits took %v: each must be followed by a sleep of %v", el, waitBound)
	}
}

type testErr struct{}

func (testErr) Error() string { return "test: socket broken" }

var errTest error = testErr{}

func TestPollConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    PollConfig
		want string
	}{
		{PollConfig{Mode: PollAdaptive, Spin: 50 * time.Microsecond}, ""},
		{PollConfig{Mode: PollBusy}, ""},
		{PollConfig{Mode: PollSleep, Spin: MaxSpin}, ""},
		{PollConfig{Mode: PollAdaptive, Spin: -time.Microsecond}, "poll.spin: -1µs"},
		{PollConfig{Mode: PollAdaptive, Spin: 2 * time.Second}, "poll.spin: 2s"},
		{PollConfig{Mode: PollMode(7)}, "poll.mode: PollMode(7)"},
	} {
		err := tc.c.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.c, err, tc.want)
		}
	}
	for _, s := range []string{"adaptive", "busy", "sleep"} {
		m, err := ParsePollMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParsePollMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParsePollMode("spin"); err == nil || !strings.Contains(err.Error(), `"spin"`) {
		t.Errorf("ParsePollMode(spin) = %v, want an error naming it", err)
	}
}

// TestWorkerIdleCPU runs a worker on an in-memory port with no traffic in
// each mode and reads its thread's CPU time from /proc over an idle
// interval after the spin: sleep and adaptive must leave the CPU idle,
// busy must keep polling. A frame delivered to a sleeping worker is still
// forwarded.
func TestWorkerIdleCPU(t *testing.T) {
	const idle = 500 * time.Millisecond
	for _, c := range []PollConfig{{Mode: PollSleep}, {Mode: PollAdaptive, Spin: DefaultSpin}, {Mode: PollBusy}} {
		t.Run(c.Mode.String(), func(t *testing.T) {
			w, ps, r := newTestWorker(t, vs.Route, 1)
			w.SetPoll(c)
			done := make(chan struct{})
			go func() { w.Run(); close(done) }()
			defer func() { w.Stop(); <-done }()
			deadline := time.Now().Add(5 * time.Second)
			for w.ThreadID() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // past the spin
			pid := os.Getpid()
			cpu0, err := ThreadCPU(pid, w.ThreadID())
			if err != nil {
				t.Fatal(err)
			}
			s0, p0, t0 := w.Sleeps(), w.polls.Load()/2, time.Now()
			time.Sleep(idle)
			cpu1, err := ThreadCPU(pid, w.ThreadID())
			if err != nil {
				t.Fatal(err)
			}
			used, wall, sleeps, turns := cpu1-cpu0, time.Since(t0), w.Sleeps()-s0, w.polls.Load()/2-p0
			t.Logf("%s: %v of CPU in %v idle, %d turns, %d sleeps", c, used, wall, turns, sleeps)
			switch c.Mode {
			case PollBusy:
				// The thread polls all the time it gets a CPU. On a
				// loaded machine that may be little CPU time, but it is
				// many turns: an idle worker makes one per waitBound.
				if sleeps != 0 || turns < 100*uint64(wall/waitBound) {
					t.Errorf("busy made %d turns and slept %d times in %v: it should poll all the time", turns, sleeps, wall)
				}
			default:
				// Each wait is bounded by waitBound; anything near
				// wall/waitBound sleeps is an idle worker.
				if used > wall/10 {
					t.Errorf("%s used %v of CPU in %v idle: it should sleep", c, used, wall)
				}
				if sleeps == 0 || sleeps > uint64(2*wall/waitBound)+2 || turns > sleeps+2 {
					t.Errorf("%s made %d turns and slept %d times in %v, want about %d of each (one per %v)", c, turns, sleeps, wall, wall/waitBound, waitBound)
				}
			}
			tx := r.c.TX.Load()
			ps[0].Deliver(tcpFrame(t, [4]byte{198, 18, 0, 10}, 4000, true, false, false, true, 0))
			for r.c.TX.Load() == tx && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if r.c.TX.Load() == tx {
				t.Errorf("%s: a frame delivered while idle was not forwarded", c)
			}
		})
	}
}

// TestWorkerPollAllocatesNothingAfterSetPoll: a change of mode is taken up
// by the next Poll, and batches allocate nothing, that one included.
func TestWorkerPollAllocatesNothingAfterSetPoll(t *testing.T) {
	w, ps, r := newTestWorker(t, vs.Route, 1)
	frame := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, true, false, false, true, 0)
	ps[0].Deliver(frame)
	w.Poll()
	ps[0].Complete()
	modes := []PollConfig{{Mode: PollBusy}, {Mode: PollSleep}, {Mode: PollAdaptive, Spin: time.Millisecond}}
	cfgs := make([]*PollConfig, len(modes))
	for i := range modes {
		cfgs[i] = &modes[i]
	}
	i := 0
	tx := r.c.TX.Load()
	if a := testing.AllocsPerRun(100, func() {
		w.pollCfg.Store(cfgs[i%len(cfgs)]) // SetPoll without its own allocation
		i++
		ps[0].Deliver(frame)
		w.Poll()
		ps[0].Complete()
	}); a != 0 {
		t.Errorf("%v allocations per batch with the mode changing every batch", a)
	}
	if r.c.TX.Load()-tx != 101 || w.applied != w.pollCfg.Load() {
		t.Errorf("%d frames forwarded, mode applied %v of %v", r.c.TX.Load()-tx, w.applied, w.pollCfg.Load())
	}
}

// TestSocketBusyPoll: the busy and adaptive modes busy-poll the device
// from the worker's system calls, a NAPI poll of one batch each; sleep
// leaves it to the kernel's softirq.
func TestSocketBusyPoll(t *testing.T) {
	for _, c := range []struct {
		cfg PollConfig
		on  bool
	}{
		{DefaultPoll(), true},
		{PollConfig{Mode: PollBusy}, true},
		{PollConfig{Mode: PollAdaptive, Spin: 2 * time.Millisecond}, true},
		{PollConfig{Mode: PollSleep}, false},
	} {
		on, usecs, budget := SocketBusyPoll(c.cfg)
		if on != c.on || usecs != busyPollUsecs || budget != dataplane.Batch {
			t.Errorf("%s: on %v usecs %d budget %d, want on %v, usecs %d, budget %d", c.cfg, on, usecs, budget, c.on, busyPollUsecs, dataplane.Batch)
		}
	}
}
