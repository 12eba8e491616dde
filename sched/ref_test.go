package sched

// Reference models: plain transcriptions of the kernel's loops over a
// snapshot of the dests, written from net/netfilter/ipvs/ip_vs_*.c without
// any of the package's structures, for the differential tests.

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

type refDest struct {
	id        uint32
	addr      [16]byte
	port      uint16
	w         int32
	act, inac int64
	over      bool
}

func snapshot(ds []Dest, l *Loads) []refDest {
	out := make([]refDest, len(ds))
	for i, d := range ds {
		out[i] = refDest{id: d.ID, addr: d.Addr, port: d.Port, w: d.Weight,
			act: int64(l.Active(d.ID)), inac: int64(l.Inactive(d.ID)), over: l.Overloaded(d.ID)}
	}
	return out
}

func (d refDest) oh() int64 { return d.act*256 + d.inac }

// ip_vs_lc.c
func refLC(ds []refDest) int {
	least := -1
	var loh int64
	for i, d := range ds {
		if d.over || d.w == 0 {
			continue
		}
		if least == -1 || d.oh() < loh {
			least, loh = i, d.oh()
		}
	}
	return least
}

// ip_vs_wlc.c and ip_vs_sed.c (overhead differs).
func refWeighted(ds []refDest, oh func(refDest) int64) int {
	least := -1
	var loh int64
	i := 0
	for ; i < len(ds); i++ {
		if !ds[i].over && ds[i].w > 0 {
			least, loh = i, oh(ds[i])
			break
		}
	}
	if least < 0 {
		return -1
	}
	for i++; i < len(ds); i++ {
		d := ds[i]
		if d.over {
			continue
		}
		if loh*int64(d.w) > oh(d)*int64(ds[least].w) {
			least, loh = i, oh(d)
		}
	}
	return least
}

func refWLC(ds []refDest) int { return refWeighted(ds, refDest.oh) }
func refSED(ds []refDest) int {
	return refWeighted(ds, func(d refDest) int64 { return d.act + 1 })
}

// ip_vs_nq.c
func refNQ(ds []refDest) int {
	least := -1
	var loh int64
	for i, d := range ds {
		if d.over || d.w == 0 {
			continue
		}
		doh := d.act + 1
		if d.act == 0 {
			return i
		}
		if least == -1 || loh*int64(d.w) > doh*int64(ds[least].w) {
			least, loh = i, doh
		}
	}
	return least
}

// ip_vs_fo.c
func refFO(ds []refDest) int {
	h := -1
	for i, d := range ds {
		if !d.over && d.w > 0 && (h == -1 || d.w > ds[h].w) {
			h = i
		}
	}
	return h
}

// ip_vs_ovf.c
func refOVF(ds []refDest) int {
	h := -1
	for i, d := range ds {
		if d.over || d.act > int64(d.w) || d.w == 0 {
			continue
		}
		if h == -1 || d.w > ds[h].w {
			h = i
		}
	}
	return h
}

// ip_vs_twos.c, with the two random draws given.
func refTwos(ds []refDest, draw func(uint32) uint32) int {
	total := 0
	found := false
	for _, d := range ds {
		if !d.over && d.w > 0 {
			total += int(d.w)
			found = true
		}
	}
	if !found {
		return -1
	}
	total++
	r1, r2 := int(draw(uint32(total))), int(draw(uint32(total)))
	c1, c2, w1, w2 := -1, -1, -1, -1
	var o1, o2 int
	for i, d := range ds {
		if d.over || d.w <= 0 {
			continue
		}
		r1 -= int(d.w)
		r2 -= int(d.w)
		if r1 <= 0 && w1 == -1 {
			c1, w1, o1 = i, int(d.w), int(d.oh())
		}
		if r2 <= 0 && w2 == -1 {
			c2, w2, o2 = i, int(d.w), int(d.oh())
		}
		if w1 != -1 && w2 != -1 {
			break
		}
	}
	if c2 != -1 && int32(w2)*int32(o1) > int32(w1)*int32(o2) {
		return c2
	}
	return c1
}

// refRR is ip_vs_rr.c with the position as the dest's ID (a list pointer),
// or none for the head.
type refRR struct {
	last    uint32
	hasLast bool
}

func (r *refRR) pick(ds []refDest) int {
	start := 0
	if r.hasLast {
		for i, d := range ds {
			if d.id == r.last {
				start = i + 1
			}
		}
	}
	n := len(ds)
	tries := n
	for k := 0; k < tries; k++ {
		i := (start + k) % max(n, 1)
		if !r.hasLast && start+k >= n {
			break
		}
		if !ds[i].over && ds[i].w > 0 {
			r.last, r.hasLast = ds[i].id, true
			return i
		}
	}
	return -1
}

// change applies ip_vs_rr_del_dest for every deleted dest: the position
// moves to the previous dest in the old list.
func (r *refRR) change(old, now []Dest) {
	if !r.hasLast {
		return
	}
	in := func(id uint32) bool {
		for _, d := range now {
			if d.ID == id {
				return true
			}
		}
		return false
	}
	pos := -1
	for i, d := range old {
		if d.ID == r.last {
			pos = i
		}
	}
	for ; pos >= 0; pos-- {
		if in(old[pos].ID) {
			r.last = old[pos].ID
			return
		}
	}
	r.hasLast = false
}

// refWRR is ip_vs_wrr.c over an explicit list position.
type refWRR struct {
	cl         int // -1 = head
	cw, mw, di int
}

func (r *refWRR) changed(ds []Dest) {
	g, mx := 0, 0
	for _, d := range ds {
		w := int(d.Weight)
		if w > 0 {
			if g > 0 {
				for a, b := w, g; ; {
					if b == 0 {
						g = a
						break
					}
					a, b = b, a%b
				}
			} else {
				g = w
			}
		}
		if w > mx {
			mx = w
		}
	}
	if g == 0 {
		g = 1
	}
	r.cl = -1
	r.di = g
	r.mw = mx - (g - 1)
	if r.cw > r.mw || r.cw == 0 {
		r.cw = r.mw
	} else if r.di > 1 {
		r.cw = (r.cw/r.di)*r.di + 1
	}
}

func (r *refWRR) pick(ds []refDest) int {
	if r.mw == 0 {
		return -1
	}
	// Walk the circular list head,0,1,...,n-1,head,... from cl; a visit to
	// the head lowers cw.
	n := len(ds)
	last := r.cl
	stop := -2
	lastPass, restarted := false, false
	pos := r.cl
	for {
		pos++
		if pos == n {
			pos = -1
			r.cw -= r.di
			if r.cw <= 0 {
				r.cw = r.mw
				if lastPass || last == -1 {
					r.cl = -1
					return -1
				}
				restarted = true
			}
			lastPass = r.cw <= r.di
			if lastPass && restarted && last != -1 {
				stop = last
			}
			continue
		}
		if !ds[pos].over && int(ds[pos].w) >= r.cw {
			r.cl = pos
			return pos
		}
		if pos == stop {
			r.cl = pos
			return -1
		}
	}
}

// Hashing, written independently of the package's helpers.
func refFold(a [16]byte) uint32 {
	ad := netip.AddrFrom16(a)
	if ad.Is4In6() {
		v4 := ad.Unmap().As4()
		return binary.BigEndian.Uint32(v4[:])
	}
	var x uint32
	for i := 0; i < 16; i += 4 {
		x ^= binary.BigEndian.Uint32(a[i : i+4])
	}
	return x
}

// ip_vs_dh.c
func refDH(ds []refDest, daddr [16]byte) int {
	if len(ds) == 0 {
		return -1
	}
	bucket := int(refHash32(refFold(daddr))) // ip_vs_dh_hashkey: hash_32(addr, 8)
	d := bucket % len(ds)
	if ds[d].w <= 0 || ds[d].over {
		return -1
	}
	return d
}

// ip_vs_sh.c
func refSHTable(ds []refDest) []int {
	tbl := make([]int, 256)
	if len(ds) == 0 {
		for i := range tbl {
			tbl[i] = -1
		}
		return tbl
	}
	p, cnt := 0, 0
	for i := range tbl {
		tbl[i] = p
		cnt++
		if cnt >= int(ds[p].w) {
			p = (p + 1) % len(ds)
			cnt = 0
		}
	}
	return tbl
}

func refHash32(v uint32) uint32 { return uint32(uint64(v)*0x61C88647) >> 24 }

func refSH(ds []refDest, tbl []int, f Flow, fallback, port bool) int {
	var p uint32
	if port && (f.Proto == 6 || f.Proto == 17 || f.Proto == 132) {
		p = uint32(f.CPort)
	}
	key := func(off uint32) uint32 { return (off + refHash32(p+refFold(f.CAddr))) & 255 }
	bad := func(d int) bool { return ds[d].w <= 0 || ds[d].over }
	ih := key(0)
	d := tbl[ih]
	if d < 0 {
		return -1
	}
	if !bad(d) {
		return d
	}
	if !fallback {
		return -1
	}
	for off := uint32(0); off < 256; off++ {
		d = tbl[key((off+ih)%256)]
		if !bad(d) {
			return d
		}
	}
	return -1
}

// sipHash is generic SipHash-c-d over bytes, returning the 64-bit state
// fold (v0^v1^v2^v3); refHsip takes the low 32 bits as hsiphash does.
func sipHash(c, d int, k0, k1 uint64, msg []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	var last [8]byte
	n := len(msg)
	full := n - n%8
	for i := 0; i < full; i += 8 {
		m := binary.LittleEndian.Uint64(msg[i:])
		v3 ^= m
		for range c {
			round()
		}
		v0 ^= m
	}
	copy(last[:], msg[full:])
	last[7] = byte(n)
	b := binary.LittleEndian.Uint64(last[:])
	v3 ^= b
	for range c {
		round()
	}
	v0 ^= b
	v2 ^= 0xff
	for range d {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

func refHsip(v uint32, key uint64) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return uint32(sipHash(1, 3, key, key, b[:]))
}

// ip_vs_mh.c: permutate + populate over last weights, for an IPv4 service
// (the differential and fuzz tests' VIPs are IPv4): ip_vs_mh_hashkey with
// AF_INET reads addr->ip, the first word of the union nf_inet_addr, which
// holds an IPv4 dest's address and an IPv6 tunnel dest's first 32 bits.
func refMHTable(ds []refDest, last []int32, m int) []int {
	return refMHTableAs(ds, last, m, func(a [16]byte) uint32 {
		if ad := netip.AddrFrom16(a); !ad.Is4In6() {
			return binary.BigEndian.Uint32(a[:4])
		}
		return refFold(a)
	})
}

// refMHTableAs is refMHTable with the dests' addresses folded by fold, the
// hashkey's treatment of the service's family.
func refMHTableAs(ds []refDest, last []int32, m int, fold func([16]byte) uint32) []int {
	tbl := make([]int, m)
	for i := range tbl {
		tbl[i] = -1
	}
	g, mx := int32(0), int32(0)
	for _, w := range last {
		if w > 0 {
			if g == 0 {
				g = w
			} else {
				g = gcd(g, w)
			}
			mx = max(mx, w)
		}
	}
	if g == 0 {
		return tbl
	}
	tabBits := 0
	for x := m; x > 0; x >>= 1 {
		tabBits++
	}
	tabBits /= 2
	fls := 0
	for x := mx / g; x > 0; x >>= 1 {
		fls++
	}
	shift := max(fls-tabBits, 0)
	type setup struct{ perm, skip, turns int }
	st := make([]setup, len(ds))
	for i, d := range ds {
		st[i].perm = int(refHsip(uint32(d.port)+fold(d.addr), mhKey1) % uint32(m))
		st[i].skip = int(refHsip(uint32(d.port)+fold(d.addr), mhKey2)%uint32(m-1)) + 1
		st[i].turns = int((last[i] / g) >> shift)
		if st[i].turns == 0 && last[i] != 0 {
			st[i].turns = 1
		}
	}
	used := make([]bool, m)
	n := 0
	for {
		for i := range ds {
			for t := 0; t < st[i].turns; t++ {
				for used[st[i].perm] {
					st[i].perm = (st[i].perm + st[i].skip) % m
				}
				used[st[i].perm] = true
				tbl[st[i].perm] = i
				n++
				if n == m {
					return tbl
				}
			}
		}
	}
}

func refMH(ds []refDest, tbl []int, f Flow, fallback, port bool) int {
	m := uint32(len(tbl))
	var p uint32
	if port && (f.Proto == 6 || f.Proto == 17 || f.Proto == 132) {
		p = uint32(f.CPort)
	}
	h := func(off uint32) uint32 { return refHsip(off+p+refFold(f.CAddr), mhKey1) % m }
	bad := func(d int) bool { return ds[d].w <= 0 || ds[d].over }
	ih := h(0)
	d := tbl[ih]
	if d < 0 {
		return -1
	}
	if !bad(d) {
		return d
	}
	if !fallback {
		return -1
	}
	for off := uint32(0); off < m; off++ {
		if d = tbl[h((off+ih)%m)]; !bad(d) {
			return d
		}
	}
	return -1
}
