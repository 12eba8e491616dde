package sched

import (
	"cmp"
	"slices"
)

// FO is weighted failover, following net/netfilter/ipvs/ip_vs_fo.c: the
// first available dest with the highest weight takes everything.
//
// The kernel scans all dests per pick. Weights are fixed per build, so New
// sorts the dests by weight, descending, then by list position; the first
// available dest in that order is exactly the scan's answer, and usually
// the first one looked at.
type FO struct {
	base
	order []int32
}

// byWeight lists the dests of positive weight, heaviest first, ties by
// list position: the kernel scans' preference order for fo and ovf.
func byWeight(b *base) []int32 {
	var order []int32
	for i, w := range b.weights {
		if w > 0 {
			order = append(order, int32(i))
		}
	}
	slices.SortStableFunc(order, func(x, y int32) int { return cmp.Compare(b.weights[y], b.weights[x]) })
	return order
}

func newFO(b *base, _ Flags, _ *Options) (Scheduler, error) {
	return &FO{base: *b, order: byWeight(b)}, nil
}

func (s *FO) Schedule(*Flow) int {
	for _, i := range s.order {
		if !s.overloaded(int(i)) {
			return int(i)
		}
	}
	return -1
}
