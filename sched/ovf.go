package sched

// OVF is the overflow-connection scheduler, following
// net/netfilter/ipvs/ip_vs_ovf.c: the highest-weight dest whose active
// connections do not exceed its weight, the first of equals; a dest's weight
// is its connection budget. Like FO it walks a precomputed heaviest-first
// order instead of scanning every dest.
type OVF struct {
	base
	order []int32
}

func newOVF(b *base, _ Flags, _ *Options) (Scheduler, error) {
	return &OVF{base: *b, order: byWeight(b)}, nil
}

func (s *OVF) Schedule(*Flow) int {
	for _, i := range s.order {
		if !s.overloaded(int(i)) && s.active(int(i)) <= int64(s.weights[i]) {
			return int(i)
		}
	}
	return -1
}
