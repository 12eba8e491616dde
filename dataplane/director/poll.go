package director

import (
	"fmt"
	"sync/atomic"
	"time"
)

// PollMode is how a worker waits for frames when its RX ring is empty.
type PollMode uint8

const (
	// PollAdaptive busy-polls while frames arrive and for the spin period
	// after the last one, then sleeps in poll(2) until the socket is
	// readable.
	PollAdaptive PollMode = iota
	// PollBusy never sleeps: the worker polls its rings in a loop and
	// keeps its CPU busy even with no traffic.
	PollBusy
	// PollSleep sleeps in poll(2) whenever the RX ring is empty.
	PollSleep
)

var pollModeNames = [...]string{PollAdaptive: "adaptive", PollBusy: "busy", PollSleep: "sleep"}

func (m PollMode) String() string {
	if int(m) < len(pollModeNames) {
		return pollModeNames[m]
	}
	return fmt.Sprintf("PollMode(%d)", m)
}

// ParsePollMode parses adaptive, busy or sleep.
func ParsePollMode(s string) (PollMode, error) {
	for i, n := range pollModeNames {
		if n == s {
			return PollMode(i), nil
		}
	}
	return 0, fmt.Errorf("%q: must be adaptive, busy or sleep", s)
}

// MaxSpin bounds the adaptive mode's spin period: a longer one is a busy
// mode by another name.
const MaxSpin = time.Second

// DefaultSpin is the adaptive mode's spin period when none is configured.
const DefaultSpin = 50 * time.Microsecond

// PollConfig is a worker's poll mode. Spin is used by PollAdaptive only.
type PollConfig struct {
	Mode PollMode
	Spin time.Duration
}

// DefaultPoll is adaptive with DefaultSpin.
func DefaultPoll() PollConfig { return PollConfig{Mode: PollAdaptive, Spin: DefaultSpin} }

// Validate names the first bad field.
func (c PollConfig) Validate() error {
	if int(c.Mode) >= len(pollModeNames) {
		return fmt.Errorf("poll.mode: %s: must be adaptive, busy or sleep", c.Mode)
	}
	if c.Spin < 0 || c.Spin > MaxSpin {
		return fmt.Errorf("poll.spin: %s: must be from 0 to %s", c.Spin, MaxSpin)
	}
	return nil
}

func (c PollConfig) String() string {
	if c.Mode == PollAdaptive {
		return fmt.Sprintf("adaptive spin=%s", c.Spin)
	}
	return c.Mode.String()
}

// Loop is a worker's polling loop. Run calls Poll until Stop is set: again
// at once while Poll finds frames; when it finds none, what happens is the
// mode's choice (Config is read at every empty turn, so a new mode takes
// effect at once): busy polls again, sleep calls Wait (poll(2) on the
// socket), and adaptive polls again until Spin has passed since the last
// frame and then calls Wait. Wait is bounded by waitBound so Stop is seen;
// a Wait that fails is replaced by a sleep of the same bound, so a broken
// socket does not spin a CPU.
type Loop struct {
	Stop   *atomic.Bool
	Config *atomic.Pointer[PollConfig]
	Poll   func() int
	Wait   func(time.Duration) error
	// Now is a monotonic clock; nil means the system's.
	Now func() time.Duration
	// Sleeps counts the Waits; may be nil.
	Sleeps *atomic.Uint64
}

// Run runs the loop until Stop is set.
func (l *Loop) Run() {
	now := l.Now
	if now == nil {
		start := time.Now()
		now = func() time.Duration { return time.Since(start) }
	}
	last := now() // the last turn that found frames
	for !l.Stop.Load() {
		if l.Poll() > 0 {
			last = -1 // read the clock only once the ring runs dry
			continue
		}
		c := l.Config.Load()
		switch c.Mode {
		case PollBusy:
			continue
		case PollAdaptive:
			t := now()
			if last < 0 {
				last = t
			}
			if t-last < c.Spin {
				continue
			}
		}
		if l.Sleeps != nil {
			l.Sleeps.Add(1)
		}
		if err := l.Wait(waitBound); err != nil {
			time.Sleep(waitBound)
		}
	}
}

// Spin runs a Loop with a fixed configuration: the bench package's
// baseline forwarder uses it.
func Spin(stop *atomic.Bool, c PollConfig, poll func() int, wait func(time.Duration) error) {
	var p atomic.Pointer[PollConfig]
	p.Store(&c)
	l := Loop{Stop: stop, Config: &p, Poll: poll, Wait: wait}
	l.Run()
}
