package sched

// OVF is the overflow-connection scheduler, following
// net/netfilter/ipvs/ip_vs_ovf.c: the highest-weight dest whose active
// connections do not exceed its weight, the first of equals; a dest's weight
// is its connection budget.
type OVF struct{ base }

func newOVF(b *base, _ Flags, _ *Options) (Scheduler, error) { return &OVF{base: *b}, nil }

func (s *OVF) Schedule(*Flow) int {
	h := -1
	for i, w := range s.weights {
		if w == 0 || s.overloaded(i) || s.active(i) > int64(w) {
			continue
		}
		if h < 0 || w > s.weights[h] {
			h = i
		}
	}
	return h
}
