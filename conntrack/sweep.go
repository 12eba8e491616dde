package conntrack

import "runtime"

// Sweep inspects the next max slots (connections, then templates, round
// robin) and releases the entries that have expired, returning how many.
// A call costs O(max) with no lock. ExpireDue is the prompt way to release
// due connections; Sweep visits every slot in turn whatever is due.
// Entries that are expired but not yet released are invisible to lookups
// and are reused first by inserts.
func (t *Table) Sweep(max int) int {
	defer runtime.KeepAlive(t) // see newStore
	nc := uint64(t.conns.slots())
	total := nc
	if t.tmpls != nil {
		total += uint64(t.tmpls.slots())
	}
	if max <= 0 {
		return 0
	}
	n := uint64(max)
	if n > total {
		n = total
	}
	start := t.sweep.Add(n) - n
	now := t.now()
	expiredN := 0
	for i := range n {
		j := (start + i) % total
		if j < nc {
			if t.sweepConn(uint32(j), now) {
				expiredN++
			}
		} else if t.sweepTemplate(uint32(j-nc), now) {
			expiredN++
		}
	}
	if t.rev != nil {
		t.sweepReverse(n)
	}
	return expiredN
}

// Slots returns how many connection and template slots Sweep cycles
// through.
func (t *Table) Slots() int {
	n := int(t.conns.slots())
	if t.tmpls != nil {
		n += int(t.tmpls.slots())
	}
	return n
}

func (t *Table) sweepConn(slot uint32, now uint64) bool {
	e := t.conns.entry(slot)
	m := e.meta.Load()
	if status(m) != statusLive || !expired(m, now) {
		return false
	}
	bind := e.bind.Load()
	if !t.conns.release(slot, m) {
		return false
	}
	t.retire(m, bind, payload(m))
	t.stats.at(slot).expired.Add(1)
	return true
}

func (t *Table) sweepTemplate(slot uint32, now uint64) bool {
	e := t.tmpls.entry(slot)
	// meta before since: putTemplate writes since before dropping the
	// count to 0, so a zero count read here comes with a fresh expiry.
	m := e.meta.Load()
	st := status(m)
	if st == statusZombie && payload(m) == 0 {
		return t.tmpls.release(slot, m)
	}
	if st != statusLive || !templateExpired(m, e.since.Load(), now) {
		return false
	}
	return t.tmpls.release(slot, m)
}
