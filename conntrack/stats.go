package conntrack

import (
	"fmt"
	"sync/atomic"
)

// Stats are the table's counters. Each is exact: every event is counted
// once by the goroutine that caused it. Read while workers run, the
// fields are individually exact but not a single instant's snapshot.
type Stats struct {
	Entries   uint64 // connections in the table now
	Templates uint64 // persistence templates in the table now
	Capacity  uint64 // Config.Capacity
	Inserted  uint64 // connections ever inserted
	Expired   uint64 // connections released by their timeout (ExpireDue, Sweep, Touch, Insert, eviction) or ExpireNow
	Evicted   uint64 // live connections dropped to make room
	Refused   uint64 // inserts refused for lack of room: dropped packets
	Reopened  uint64 // connections released by a SYN that may reuse their port (Touch's Reopen)
}

// statStripes spreads the counters over cache lines so queues inserting
// into different buckets do not bounce one line between cores.
const statStripes = 16

// counters is one stripe: 40 bytes of counters in 128, so that two
// stripes are at least 88 bytes apart and never share a 64-byte line,
// wherever the Table that holds them lands.
type counters struct {
	inserted, expired, evicted, refused, reopened atomic.Uint64
	_                                             [88]byte
}

type stats [statStripes]counters

func (s *stats) at(slot uint32) *counters {
	return &s[slot/bucketSlots%statStripes]
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	st := Stats{
		Entries:  uint64(t.conns.live.Load()),
		Capacity: uint64(t.conns.capacity),
	}
	if t.tmpls != nil {
		st.Templates = uint64(t.tmpls.live.Load())
	}
	for i := range t.stats {
		c := &t.stats[i]
		st.Inserted += c.inserted.Load()
		st.Expired += c.expired.Load()
		st.Evicted += c.evicted.Load()
		st.Refused += c.refused.Load()
		st.Reopened += c.reopened.Load()
	}
	return st
}

// String formats the counters for logs.
func (s Stats) String() string {
	return fmt.Sprintf("entries=%d/%d templates=%d inserted=%d expired=%d evicted=%d refused=%d reopened=%d",
		s.Entries, s.Capacity, s.Templates, s.Inserted, s.Expired, s.Evicted, s.Refused, s.Reopened)
}
