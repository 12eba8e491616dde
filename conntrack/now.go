package conntrack

import "time"

// Now reads the table's clock: the time base of its timeouts, which other
// per-packet state of the dataplane (the fragment table) shares so that
// tests and the simulator move both with one ManualClock.
func (t *Table) Now() time.Duration { return t.clock.Now() }
