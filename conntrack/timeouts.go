package conntrack

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Timeouts is how long an entry lives after its last packet, per state.
// The table keeps them in milliseconds.
type Timeouts struct {
	None        time.Duration
	Established time.Duration
	SynSent     time.Duration
	SynRecv     time.Duration
	FinWait     time.Duration
	TimeWait    time.Duration
	Close       time.Duration
	CloseWait   time.Duration
	LastAck     time.Duration
	Listen      time.Duration
	SynAck      time.Duration
	UDP         time.Duration
}

// DefaultTimeouts returns IPVS's default TCP and UDP timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		None:        2 * time.Second,
		Established: 900 * time.Second,
		SynSent:     120 * time.Second,
		SynRecv:     60 * time.Second,
		FinWait:     120 * time.Second,
		TimeWait:    120 * time.Second,
		Close:       10 * time.Second,
		CloseWait:   60 * time.Second,
		LastAck:     30 * time.Second,
		Listen:      120 * time.Second,
		SynAck:      120 * time.Second,
		UDP:         300 * time.Second,
	}
}

// MaxTimeout is the longest timeout the table stores (2^32 ms, about 49
// days): timeouts are kept as 32-bit millisecond counts.
const MaxTimeout = time.Duration(1<<32-1) * time.Millisecond

func (t *Timeouts) byState() [numStates]time.Duration {
	return [numStates]time.Duration{
		t.None, t.Established, t.SynSent, t.SynRecv, t.FinWait, t.TimeWait,
		t.Close, t.CloseWait, t.LastAck, t.Listen, t.SynAck, t.UDP,
	}
}

var timeoutFields = [numStates]string{
	"None", "Established", "SynSent", "SynRecv", "FinWait", "TimeWait",
	"Close", "CloseWait", "LastAck", "Listen", "SynAck", "UDP",
}

func (t *Timeouts) validate() error {
	for i, d := range t.byState() {
		if d < time.Millisecond || d > MaxTimeout {
			return fmt.Errorf("timeouts.%s = %v: must be between 1ms and %v", timeoutFields[i], d, MaxTimeout)
		}
	}
	return nil
}

// timeoutTable holds the live timeouts; SetTimeouts may change three of
// them while workers read them per packet.
type timeoutTable [numStates]atomic.Uint32

func (tt *timeoutTable) load(t Timeouts) {
	for i, d := range t.byState() {
		tt[i].Store(toMillis(d))
	}
}

func (tt *timeoutTable) of(s State) uint64 {
	if int(s) >= len(tt) {
		return uint64(tt[None].Load())
	}
	return uint64(tt[s].Load())
}

// toMillis rounds d up to whole milliseconds within [1ms, MaxTimeout] so
// that a positive timeout never becomes zero.
func toMillis(d time.Duration) uint32 {
	if d >= MaxTimeout {
		return 1<<32 - 1
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return uint32(ms)
}

// SetTimeouts is ipvsadm --set: it changes the ESTABLISHED, FIN_WAIT and
// UDP timeouts. A value of 0 (or below) leaves that one unchanged; values
// beyond MaxTimeout are clamped. Entries pick up a new timeout at their
// next packet, as in IPVS.
func (t *Table) SetTimeouts(tcp, tcpfin, udp time.Duration) {
	if tcp > 0 {
		t.timeouts[Established].Store(toMillis(tcp))
	}
	if tcpfin > 0 {
		t.timeouts[FinWait].Store(toMillis(tcpfin))
	}
	if udp > 0 {
		t.timeouts[UDP].Store(toMillis(udp))
	}
}

// TimeoutsSet returns the three timeouts ipvsadm --set controls.
func (t *Table) TimeoutsSet() (tcp, tcpfin, udp time.Duration) {
	ms := func(s State) time.Duration { return time.Duration(t.timeouts.of(s)) * time.Millisecond }
	return ms(Established), ms(FinWait), ms(UDP)
}
