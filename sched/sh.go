package sched

// shBits is IP_VS_SH_TAB_BITS: 256 buckets.
const shBits = 8

// SH is source hashing, following net/netfilter/ipvs/ip_vs_sh.c. Each dest
// owns weight consecutive buckets (at least one) as ip_vs_sh_reassign lays
// them out, cycling through the dests until 256 are filled. The client
// address, plus the client port with sh-port, picks a bucket. A bucket whose
// owner has weight 0 or is overloaded gives no dest, or with sh-fallback
// the first available owner along the kernel's probe sequence.
type SH struct {
	base
	fallback, port bool
	table          [1 << shBits]int32
}

func newSH(b *base, flags Flags, _ *Options) (Scheduler, error) {
	s := &SH{base: *b, fallback: flags&FlagSHFallback != 0, port: flags&FlagSHPort != 0}
	n := len(b.ids)
	d, count := 0, int32(0)
	for i := range s.table {
		if n == 0 {
			s.table[i] = -1
			continue
		}
		s.table[i] = int32(d)
		count++
		if count >= b.weights[d] {
			d = (d + 1) % n
			count = 0
		}
	}
	return s, nil
}

func (s *SH) unavailable(d int) bool { return s.weights[d] <= 0 || s.overloaded(d) }

func (s *SH) Schedule(f *Flow) int {
	var port uint16
	if s.port && hasPorts(f.Proto) {
		port = f.CPort
	}
	key := uint32(port) + fold(&f.CAddr)
	ihash := hash32(key, shBits)
	d := int(s.table[ihash])
	if d < 0 {
		return -1
	}
	if !s.unavailable(d) {
		return d
	}
	if !s.fallback {
		return -1
	}
	// ip_vs_sh_get_fallback adds the rotated offset to the hash once more,
	// so the probe visits (offset + 2*ihash) mod 256: every bucket, once.
	for off := uint32(0); off < 1<<shBits; off++ {
		roff := (off + ihash) % (1 << shBits)
		d = int(s.table[(roff+hash32(key, shBits))&(1<<shBits-1)])
		if !s.unavailable(d) {
			return d
		}
	}
	return -1
}
