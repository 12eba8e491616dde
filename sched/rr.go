package sched

import "sync/atomic"

// RR is round-robin, following net/netfilter/ipvs/ip_vs_rr.c: continue after
// the last pick, skip dests that are overloaded or have weight 0, and stay
// put when nothing is available.
//
// The kernel serialises the position under svc->sched_lock per packet; here
// it is a CAS, so concurrent workers hand out consecutive dests exactly as
// the locked version would, without a lock.
type RR struct {
	base
	// pos is the index of the last pick, or -1 for the list head.
	pos atomic.Int64
}

func newRR(b *base, _ Flags, opt *Options) (Scheduler, error) {
	s := &RR{base: *b}
	s.pos.Store(-1)
	if p, ok := prevOf[*RR](opt); ok {
		s.pos.Store(int64(carryPosition(&p.base, int(p.pos.Load()), b)))
	}
	return s, nil
}

// carryPosition maps a list position of an old dest list onto a new one. The
// kernel's rr keeps a pointer to the last dest; when that dest is deleted,
// ip_vs_rr_del_dest moves it to the previous entry. So: the same dest if it
// survived, else the nearest surviving dest before it, else the head.
func carryPosition(old *base, pos int, nb *base) int {
	for i := pos; i >= 0 && i < len(old.ids); i-- {
		if j, ok := nb.index[old.ids[i]]; ok {
			return j
		}
	}
	return -1
}

func (s *RR) Schedule(*Flow) int {
	n := len(s.ids)
	for {
		last := s.pos.Load()
		i := s.scan(int(last), n)
		if i < 0 {
			return -1
		}
		if s.pos.CompareAndSwap(last, int64(i)) {
			return i
		}
	}
}

// scan looks at last+1..n-1 and then, unless last is the head, 0..last.
func (s *RR) scan(last, n int) int {
	for i := last + 1; i < n; i++ {
		if s.weights[i] > 0 && !s.overloaded(i) {
			return i
		}
	}
	for i := 0; i <= last && i < n; i++ {
		if s.weights[i] > 0 && !s.overloaded(i) {
			return i
		}
	}
	return -1
}
