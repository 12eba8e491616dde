package sched

// dhBits is IP_VS_DH_TAB_BITS: 256 buckets.
const dhBits = 8

// DH is destination hashing, following net/netfilter/ipvs/ip_vs_dh.c: the
// packet's destination address picks one of 256 buckets by
// ip_vs_dh_hashkey, hash_32(address, 8). ip_vs_dh_reassign hands the
// buckets to the dests round-robin in list order, regardless of weight; an
// overloaded or weight-0 bucket owner means no dest (dh has no fallback).
type DH struct {
	base
	table [1 << dhBits]int32
}

func newDH(b *base, _ Flags, _ *Options) (Scheduler, error) {
	s := &DH{base: *b}
	n := len(b.ids)
	for i := range s.table {
		if n == 0 {
			s.table[i] = -1
		} else {
			s.table[i] = int32(i % n)
		}
	}
	return s, nil
}

func (s *DH) Schedule(f *Flow) int {
	d := int(s.table[hash32(fold(&f.VAddr), dhBits)])
	if d < 0 || s.weights[d] <= 0 || s.overloaded(d) {
		return -1
	}
	return d
}
