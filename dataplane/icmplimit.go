package dataplane

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
)

// ICMP rate-limit defaults, Linux's net.ipv4.icmp_msgs_per_sec and
// icmp_msgs_burst.
const (
	DefaultICMPRate  = 1000
	DefaultICMPBurst = 50
	MaxICMPRate      = 1_000_000
)

// ICMPLimiter caps the ICMP errors the director sends, as Linux caps a
// host's with icmp_msgs_per_sec and icmp_msgs_burst: a bucket of Burst
// tokens refilled at Rate per second, shared by every worker, so a flood
// of oversized DF packets cannot turn the director into an ICMP source.
//
// It is the generic cell rate algorithm: one atomic word holds the time
// at which the bucket would be full again, and a message is allowed while
// that time is less than Burst intervals ahead. A nil limiter allows
// everything (replay and the simulator run without one).
type ICMPLimiter struct {
	clock    conntrack.Clock
	interval int64 // ns per token
	ahead    int64 // how far the full time may run ahead of now: (burst-1) intervals
	full     atomic.Int64
}

// NewICMPLimiter returns a limiter allowing rate messages a second with
// bursts of burst. Errors name the value and the rule.
func NewICMPLimiter(rate, burst int, clock conntrack.Clock) (*ICMPLimiter, error) {
	if rate < 1 || rate > MaxICMPRate {
		return nil, fmt.Errorf("icmp rate %d: must be 1..%d messages a second", rate, MaxICMPRate)
	}
	if burst < 1 || burst > MaxICMPRate {
		return nil, fmt.Errorf("icmp burst %d: must be 1..%d", burst, MaxICMPRate)
	}
	if clock == nil {
		clock = conntrack.SystemClock()
	}
	iv := int64(time.Second) / int64(rate)
	return &ICMPLimiter{clock: clock, interval: iv, ahead: int64(burst-1) * iv}, nil
}

// Allow takes a token if there is one.
func (l *ICMPLimiter) Allow() bool {
	if l == nil {
		return true
	}
	now := int64(l.clock.Now())
	for {
		full := l.full.Load()
		if full-now > l.ahead {
			return false
		}
		if l.full.CompareAndSwap(full, max(full, now)+l.interval) {
			return true
		}
	}
}
