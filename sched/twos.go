package sched

// Twos is the power-of-two-choices scheduler, following
// net/netfilter/ipvs/ip_vs_twos.c: draw two dests at random in proportion to
// weight, take the one with the lower overhead/weight.
//
// The kernel draws from [0, total weight] (it adds 1 to the total) and picks
// the first dest where the running remainder reaches <= 0, so a draw of 0
// lands on the first dest: the first dest is slightly favoured. Kept as is.
// The final comparison is the kernel's int product; it is done in int32 with
// wrap-around as the kernel (built with -fno-strict-overflow) does.
type Twos struct {
	base
	rand func(uint32) uint32
}

func newTwos(b *base, _ Flags, opt *Options) (Scheduler, error) {
	return &Twos{base: *b, rand: opt.Rand}, nil
}

func (s *Twos) Schedule(*Flow) int {
	var total int32
	lastOK := -1
	for i, w := range s.weights {
		if w > 0 && !s.overloaded(i) {
			total += w
			lastOK = i
		}
	}
	if lastOK < 0 {
		return -1
	}
	total++
	r1 := int32(s.rand(uint32(total)))
	r2 := int32(s.rand(uint32(total)))
	// As in the kernel, choice1 starts as the last available dest; a draw
	// always lands before the list ends, so this only matters to a Rand
	// that breaks its contract.
	c1, c2 := lastOK, -1
	found1 := false
	var w1, w2, o1, o2 int32
	for i, w := range s.weights {
		if w <= 0 || s.overloaded(i) {
			continue
		}
		r1 -= w
		r2 -= w
		if r1 <= 0 && !found1 {
			c1, w1, o1, found1 = i, w, int32(s.overhead(i)), true
		}
		if r2 <= 0 && c2 < 0 {
			c2, w2, o2 = i, w, int32(s.overhead(i))
		}
		if found1 && c2 >= 0 {
			break
		}
	}
	if c2 >= 0 && w2*o1 > w1*o2 {
		return c2
	}
	return c1
}
