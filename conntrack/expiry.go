package conntrack

import (
	"github.com/afvs/afvs/internal/plainstore"
	"runtime"
	"sync/atomic"
)

// The expiry index lets ExpireDue release every connection whose timeout
// has passed without reading the whole table, so the Hooks (and through
// them the schedulers' ActiveConn/InActConn counts) hear of an expiry as
// soon as the caller asks, as IPVS's per-connection timers would tell
// them, for a cost that grows with the expiries and a small scan rather
// than with the table.
//
// It is two arrays of 32-bit words in the connection store's region,
// after the entries: due holds, for every slot, a second (table
// milliseconds / 1000) no later than the expiry of the entry in it, or
// noDue; gdue holds, for every group of dueGroupBuckets buckets, a second
// no later than any due in the group. Both are lower bounds, never exact
// times, which is what lets the packet path leave them alone: a refresh
// moves an entry's expiry later and the bound stays true. Only when an
// expiry moves earlier (a state with a shorter timeout, or ipvsadm --set
// lowering one) does Touch lower the two words, with an atomic minimum.
// Insert files a new entry's second; release sets noDue before the slot
// can be reused.
//
// ExpireDue scans gdue, and in every group whose bound has come it reads
// the dues, and the entries whose due has come. An expired entry is
// released and retired at its expiry time; a live one gets its due raised
// to its real expiry second, so it is read again only when that comes.
// Raising races with Touch lowering: the raiser re-reads the entry's meta
// after its compare-and-swap and lowers again if the expiry moved, and
// since Touch lowers after its own meta CAS one of the two always sees
// the other. The group bound is recomputed the same way: store the new
// minimum, then fold every due in again with an atomic minimum, so a due
// lowered during the scan is either seen by the second pass or lowers the
// group after it.
//
// Memory: 4 bytes per slot and 4 per dueGroupBuckets*14 slots.

// noDue marks a slot with nothing to expire.
const noDue = ^uint32(0)

// dueGroupBuckets is how many buckets one group bound covers: 56 slots,
// whose dues fill 224 bytes (3.5 cache lines).
const dueGroupBuckets = 4

func dueGroups(nb int) int { return (nb + dueGroupBuckets - 1) / dueGroupBuckets }

const dueGroupSlots = dueGroupBuckets * bucketSlots

// dueSec is the second an expiry time (table ms) falls in.
func dueSec(ms uint64) uint32 {
	s := ms / 1000
	if s >= uint64(noDue) {
		return noDue - 1
	}
	return uint32(s)
}

func atomicMin(a *atomic.Uint32, v uint32) {
	for {
		o := a.Load()
		if o <= v || a.CompareAndSwap(o, v) {
			return
		}
	}
}

// setDue files the expiry of a slot being published.
func (s *store) setDue(slot uint32, exp uint64) {
	sec := dueSec(exp)
	// The slot is busy (see publish): a plain store, ordered by the
	// atomic operations that follow.
	plainstore.Store32(&s.due[slot], sec)
	atomicMin(&s.gdue[slot/dueGroupSlots], sec)
}

// lowerDue makes the index no later than exp for slot.
func (s *store) lowerDue(slot uint32, exp uint64) {
	if s.due == nil {
		return
	}
	sec := dueSec(exp)
	atomicMin(&s.due[slot], sec)
	atomicMin(&s.gdue[slot/dueGroupSlots], sec)
}

// ExpireDue releases every connection whose timeout has passed, as each
// connection's own timer would in IPVS, and returns how many. The Hooks
// hear each Unbind, and a controlled connection gives its template back
// as of its expiry time, however late the call. It is safe beside the
// workers, takes no lock and does not allocate; its cost is a read of one
// word per 56 slots plus the groups that hold an expiry due by now.
// Templates are not in the index: lookups judge them by time, and Sweep
// or SweepTemplates frees their slots.
func (t *Table) ExpireDue() int {
	defer runtime.KeepAlive(t) // see newStore
	s := t.conns
	now := t.now()
	sec := dueSec(now)
	n := 0
	for g := range s.gdue {
		g0 := s.gdue[g].Load()
		if g0 > sec {
			continue
		}
		n += t.expireGroup(uint32(g), g0, sec, now)
	}
	return n
}

// expireGroup handles one group whose bound g0 is due at second sec.
func (t *Table) expireGroup(g, g0, sec uint32, now uint64) int {
	s := t.conns
	lo := g * dueGroupSlots
	hi := min(lo+dueGroupSlots, uint32(len(s.entries)))
	n := 0
	for slot := lo; slot < hi; slot++ {
		d0 := s.due[slot].Load()
		if d0 > sec {
			continue
		}
		e := &s.entries[slot]
		m := e.meta.Load()
		if status(m) != statusLive {
			continue
		}
		if expired(m, now) {
			bind := e.bind.Load()
			if s.release(slot, m) {
				t.retire(m, bind, payload(m))
				t.stats.at(slot).expired.Add(1)
				n++
				continue
			}
			m = e.meta.Load() // touched meanwhile: file what it is now
			if status(m) != statusLive {
				continue
			}
		}
		want := dueSec(payload(m))
		if want <= d0 || !s.due[slot].CompareAndSwap(d0, want) {
			continue
		}
		m2 := e.meta.Load()
		switch {
		case m2&identityMask != m&identityMask:
			// Released and perhaps reused meanwhile: never leave a bound
			// later than what the new lifetime filed.
			atomicMin(&s.due[slot], d0)
		case payload(m2) < payload(m):
			atomicMin(&s.due[slot], dueSec(payload(m2)))
		}
	}
	gmin := noDue
	for slot := lo; slot < hi; slot++ {
		gmin = min(gmin, s.due[slot].Load())
	}
	if s.gdue[g].CompareAndSwap(g0, gmin) {
		for slot := lo; slot < hi; slot++ {
			atomicMin(&s.gdue[g], s.due[slot].Load())
		}
	}
	return n
}

// SweepTemplates inspects the next max template slots and frees the
// expired ones, returning how many. Lookups already ignore an expired
// template; this gives its slot back.
func (t *Table) SweepTemplates(max int) int {
	defer runtime.KeepAlive(t) // see newStore
	if t.tmpls == nil || max <= 0 {
		return 0
	}
	total := uint64(len(t.tmpls.entries))
	n := min(uint64(max), total)
	start := t.tsweep.Add(n) - n
	now := t.now()
	freed := 0
	for i := range n {
		if t.sweepTemplate(uint32((start+i)%total), now) {
			freed++
		}
	}
	return freed
}
