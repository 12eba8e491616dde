package sched

import (
	"fmt"
	"math/bits"
)

// The fixed hsiphash keys of ip_vs_mh.c's generate_hash_secret. Being fixed
// (no per-boot seed) is the point: every director with the same dests builds
// the same table, so ECMP can spray a flow to any of them.
const (
	mhKey1 = 2654435761
	mhKey2 = 2654435801
)

// Maglev is Maglev consistent hashing, following net/netfilter/ipvs/ip_vs_mh.c
// (Eisenbud et al., NSDI 2016, section 3.4). Each dest walks its own
// permutation of the prime-sized table (offset and skip from two fixed-key
// hashes of its address and port) and dests take turns claiming their next
// free slot; a dest of weight w takes w/gcd turns in a row, scaled down by a
// shift so the largest ratio fits in MaglevBits bits as the kernel does. A
// lookup hashes the client address (and port with mh-port); an unavailable
// owner gives no dest, or with mh-fallback the first available owner along
// the kernel's rehash sequence.
//
// The kernel sizes its table from a fixed list of primes (CONFIG_IP_VS_MH_
// TAB_INDEX, 4093 by default) and allows IP_VS_MH_TAB_BITS = CONFIG/2 bits
// of weight ratio. Here the size is any prime (default 65537) and the bits
// are bitlen(size)/2, which equals the kernel's value for every kernel
// prime, so with MaglevSize 4093 the table is the kernel's.
//
// A dest set to weight 0 keeps its slots (the kernel's last_weight), so
// quiescing one server does not move anyone else's flows; New takes that
// weight from Options.Prev. A dest added with weight 0 gets no slots.
type Maglev struct {
	base
	fallback, port bool
	size           uint32
	v6             bool // the service is IPv6: how dest addresses fold
	table          []int32
	lastWeight     []int32
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// maxMaglevSize bounds the table to 64 MiB of int32.
const maxMaglevSize = 1 << 24

func newMH(b *base, flags Flags, opt *Options) (Scheduler, error) {
	m := opt.MaglevSize
	if m > maxMaglevSize || !isPrime(m) {
		return nil, fmt.Errorf("maglev table size %d: must be a prime no larger than %d", m, maxMaglevSize)
	}
	s := &Maglev{
		base:       *b,
		fallback:   flags&FlagMHFallback != 0,
		port:       flags&FlagMHPort != 0,
		size:       uint32(m),
		v6:         opt.IPv6,
		lastWeight: make([]int32, len(b.ids)),
	}
	prev, _ := prevOf[*Maglev](opt)
	for i, w := range b.weights {
		s.lastWeight[i] = w
		if w == 0 && prev != nil {
			// "keep the last_weight with latest non-0 weight"
			// (__ip_vs_update_dest): an edit to 0 keeps the old one.
			if j, ok := prev.index[b.ids[i]]; ok {
				s.lastWeight[i] = prev.lastWeight[j]
			}
		}
	}
	s.table = s.populate()
	return s, nil
}

// hash is ip_vs_mh_hashkey for a client address, which is of the
// service's family, so fold agrees with the kernel's svc->af fold.
func (s *Maglev) hash(addr *[16]byte, port uint16, key uint64, offset uint32) uint32 {
	return hsiphash32(offset+uint32(port)+fold(addr), key, key)
}

// destHash is ip_vs_mh_hashkey for a dest, which may be a tunnel dest of the
// other family: it folds as the service's family (ip_vs_mh_permutate passes
// svc->af).
func (s *Maglev) destHash(addr *[16]byte, port uint16, key uint64) uint32 {
	return hsiphash32(uint32(port)+foldAs(s.v6, addr), key, key)
}

// populate is ip_vs_mh_permutate + ip_vs_mh_populate.
func (s *Maglev) populate() []int32 {
	m := s.size
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	g, maxw := weightGCD(s.lastWeight)
	if g < 1 {
		return table
	}
	tabBits := bits.Len32(m) / 2
	shift := max(bits.Len32(uint32(maxw/g))-tabBits, 0)
	n := len(s.ids)
	perm := make([]uint32, n)
	skip := make([]uint32, n)
	turns := make([]int32, n)
	for i := range n {
		d := &s.dests[i]
		perm[i] = s.destHash(&d.Addr, d.Port, mhKey1) % m
		skip[i] = s.destHash(&d.Addr, d.Port, mhKey2)%(m-1) + 1
		lw := s.lastWeight[i]
		turns[i] = (lw / g) >> shift
		if turns[i] == 0 && lw != 0 {
			turns[i] = 1
		}
	}
	taken := make([]bool, m)
	filled := uint32(0)
	for filled < m {
		for i := 0; i < n; i++ {
			for t := int32(0); t < turns[i]; t++ {
				c := perm[i]
				for taken[c] {
					perm[i] += skip[i]
					if perm[i] >= m {
						perm[i] -= m
					}
					c = perm[i]
				}
				taken[c] = true
				table[c] = int32(i)
				if filled++; filled == m {
					return table
				}
			}
		}
	}
	return table
}

func (s *Maglev) unavailable(d int) bool { return s.weights[d] <= 0 || s.overloaded(d) }

func (s *Maglev) Schedule(f *Flow) int {
	var port uint16
	if s.port && hasPorts(f.Proto) {
		port = f.CPort
	}
	ihash := s.hash(&f.CAddr, port, mhKey1, 0) % s.size
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
	for off := uint32(0); off < s.size; off++ {
		roff := (off + ihash) % s.size
		d = int(s.table[s.hash(&f.CAddr, port, mhKey1, roff)%s.size])
		if !s.unavailable(d) {
			return d
		}
	}
	return -1
}

// Slots returns how many table slots each dest owns, for tests and tooling.
func (s *Maglev) Slots() []int {
	out := make([]int, len(s.ids))
	for _, d := range s.table {
		if d >= 0 {
			out[d]++
		}
	}
	return out
}
