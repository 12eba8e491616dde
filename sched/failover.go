package sched

// FO is weighted failover, following net/netfilter/ipvs/ip_vs_fo.c: the
// first available dest with the highest weight takes everything.
type FO struct{ base }

func newFO(b *base, _ Flags, _ *Options) (Scheduler, error) { return &FO{base: *b}, nil }

func (s *FO) Schedule(*Flow) int {
	h := -1
	for i, w := range s.weights {
		if w > 0 && !s.overloaded(i) && (h < 0 || w > s.weights[h]) {
			h = i
		}
	}
	return h
}
