package sched

import "sync/atomic"

// WRR is weighted round-robin, following net/netfilter/ipvs/ip_vs_wrr.c:
// with di the gcd of the positive weights and mw = max weight - (di - 1),
// the current weight cw steps down from mw by di per pass over the list, and
// a pass picks every non-overloaded dest whose weight is >= cw.
//
// The kernel keeps (cl, cw) under svc->sched_lock; here both live in one
// 64-bit word updated by CAS, so concurrent picks follow the same sequence.
// On a rebuild with Options.Prev the position restarts at the head and cw is
// re-derived from the previous cw as ip_vs_wrr_dest_changed does; a rebuild
// that bundles several admin changes applies that rule once.
type WRR struct {
	base
	di, mw int32
	// state packs cl (index of the last pick + 1; 0 = list head) in the high
	// half and cw in the low half.
	state atomic.Uint64
}

func pack(cl, cw int32) uint64       { return uint64(uint32(cl+1))<<32 | uint64(uint32(cw)) }
func unpack(v uint64) (cl, cw int32) { return int32(uint32(v>>32)) - 1, int32(uint32(v)) }

func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// weightGCD returns the greatest common divisor and the maximum of the
// positive weights (0, 0 when there are none), as ip_vs_wrr_gcd_weight and
// ip_vs_wrr_max_weight compute them; ip_vs_mh.c derives its table the same way.
func weightGCD(weights []int32) (g, maxw int32) {
	for _, w := range weights {
		if w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
			maxw = max(maxw, w)
		}
	}
	return g, maxw
}

func newWRR(b *base, _ Flags, opt *Options) (Scheduler, error) {
	s := &WRR{base: *b}
	g, maxw := weightGCD(b.weights)
	if g == 0 {
		g = 1
	}
	s.di = g
	s.mw = maxw - (g - 1)
	// A new service starts from cw = 0 (ip_vs_wrr_init_svc runs with no
	// dests), so the first dest_changed sets cw = mw.
	var cw int32
	if p, ok := prevOf[*WRR](opt); ok {
		_, cw = unpack(p.state.Load())
	}
	switch {
	case cw > s.mw || cw == 0:
		cw = s.mw
	case s.di > 1:
		cw = (cw/s.di)*s.di + 1
	}
	s.state.Store(pack(-1, cw))
	return s, nil
}

func (s *WRR) Schedule(*Flow) int {
	for {
		old := s.state.Load()
		cl, cw := unpack(old)
		pick, ncl, ncw := s.step(cl, cw)
		next := pack(ncl, ncw)
		if next == old || s.state.CompareAndSwap(old, next) {
			return int(pick)
		}
	}
}

// step is one ip_vs_wrr_schedule call on (cl, cw); it returns the pick (or
// -1) and the new (cl, cw). The last_pass/restarted/stop bookkeeping is the
// kernel's guarantee that, when every dest is overloaded, the loop ends
// after each dest was tried once with cw <= di.
func (s *WRR) step(cl, cw int32) (pick, ncl, ncw int32) {
	if s.mw == 0 {
		return -1, cl, cw
	}
	n := int32(len(s.ids))
	last := cl
	stop := int32(-2) // no stop yet; -1 is the head
	lastPass, restarted := false, false
	d := cl
	for {
		for d = d + 1; d < n; d++ {
			if !s.overloaded(int(d)) && s.weights[d] >= cw {
				return d, d, cw
			}
			if d == stop {
				return -1, d, cw
			}
		}
		d = -1
		cw -= s.di
		if cw <= 0 {
			cw = s.mw
			if lastPass || last == -1 {
				return -1, -1, cw
			}
			restarted = true
		}
		lastPass = cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}
