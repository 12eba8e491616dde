package conntrack

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the table's source of monotonic time. The table reads it on
// every Lookup, Touch and Insert, so an implementation must be cheap and
// safe for concurrent use.
type Clock interface {
	Now() time.Duration
}

// ManualClock is a Clock that moves only when told, so tests and the
// simulator can run hours of timeouts in milliseconds. The zero value reads
// 0 and is ready to use; it is safe for concurrent use.
type ManualClock struct {
	now atomic.Int64
}

// Now returns the clock's current reading.
func (c *ManualClock) Now() time.Duration { return time.Duration(c.now.Load()) }

// Advance moves the clock forward by d (backward if d is negative).
func (c *ManualClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

// Set moves the clock to d.
func (c *ManualClock) Set(d time.Duration) { c.now.Store(int64(d)) }

// coarseResolution is how often the system clock's reading is refreshed.
const coarseResolution = time.Millisecond

type coarseClock struct {
	now atomic.Int64
}

func (c *coarseClock) Now() time.Duration { return time.Duration(c.now.Load()) }

var system struct {
	once  sync.Once
	clock coarseClock
}

// SystemClock returns the process-wide coarse monotonic clock: the time
// since its first use, refreshed every millisecond by one background
// goroutine, so a read is one atomic load instead of a vDSO call per
// packet. Its resolution is 1 ms; on a saturated machine a reading may lag
// by up to a scheduler quantum (about 10 ms), which is negligible against
// timeouts measured in seconds. The goroutine lives as long as the process.
func SystemClock() Clock {
	system.once.Do(func() {
		epoch := time.Now()
		go func() {
			tick := time.NewTicker(coarseResolution)
			for range tick.C {
				system.clock.now.Store(int64(time.Since(epoch)))
			}
		}()
	})
	return &system.clock
}
