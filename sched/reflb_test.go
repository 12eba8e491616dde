package sched

// Reference models of ip_vs_lblc.c and ip_vs_lblcr.c: a bucket array of
// plain slices (index 0 is the hlist head), the kernel's timer replayed
// every 60 s, and the schedule functions transcribed loop for loop.

type refEntry struct {
	key     [16]byte
	dest    uint32
	set     []uint32 // lblcr, head first
	lastmod int64
	lastuse int64
}

type refCache struct {
	buckets   [1024][]*refEntry
	entries   int64
	rover     int
	counter   int
	nextCheck int64
	expire    int64
	weights   map[uint32]int32 // last weight of every dest ever seen
}

func newRefCache(now, expire int64) *refCache {
	return &refCache{counter: 1, nextCheck: now + 60e9, expire: expire, weights: map[uint32]int32{}}
}

func (c *refCache) bucket(k [16]byte) int {
	// ip_vs_lblc_hashkey / ip_vs_lblcr_hashkey: hash_32(addr, 10).
	return int(uint32(uint64(refFold(k))*0x61C88647) >> 22)
}

func (c *refCache) get(k [16]byte) *refEntry {
	for _, e := range c.buckets[c.bucket(k)] {
		if e.key == k {
			return e
		}
	}
	return nil
}

func (c *refCache) del(e *refEntry) {
	b := c.bucket(e.key)
	for i, x := range c.buckets[b] {
		if x == e {
			c.buckets[b] = append(c.buckets[b][:i:i], c.buckets[b][i+1:]...)
			return
		}
	}
}

func (c *refCache) hash(e *refEntry) {
	b := c.bucket(e.key)
	c.buckets[b] = append([]*refEntry{e}, c.buckets[b]...)
	c.entries++
}

func (c *refCache) timer(now int64) {
	for n := 0; now >= c.nextCheck && n < 100000; n++ {
		t := c.nextCheck
		if c.counter%30 == 0 {
			c.collect(t, c.expire, false, 0)
			c.counter = 1
		} else if c.entries <= 16384 {
			c.counter++
		} else {
			goal := min((c.entries-16384)*4/3, 16384/2)
			c.collect(t, 360e9, true, goal)
		}
		c.nextCheck = t + 60e9
	}
}

func (c *refCache) collect(now, age int64, limited bool, goal int64) {
	j := c.rover
	for i := 0; i < 1024; i++ {
		j = (j + 1) & 1023
		keep := c.buckets[j][:0:0]
		for _, e := range c.buckets[j] {
			if now < e.lastuse+age {
				keep = append(keep, e)
				continue
			}
			c.entries--
			goal--
		}
		c.buckets[j] = keep
		if limited && goal <= 0 {
			break
		}
	}
	c.rover = j
}

func refLBOverloaded(ds []refDest, d int) bool {
	if ds[d].act > int64(ds[d].w) {
		for _, x := range ds {
			if x.act*2 < int64(x.w) {
				return true
			}
		}
	}
	return false
}

func indexOf(ds []refDest, id uint32) int {
	for i, d := range ds {
		if d.id == id {
			return i
		}
	}
	return -1
}

func refLBLC(c *refCache, ds []refDest, f Flow, now int64) int {
	c.timer(now)
	if e := c.get(f.VAddr); e != nil {
		e.lastuse = now
		if d := indexOf(ds, e.dest); d >= 0 && ds[d].w > 0 && !refLBOverloaded(ds, d) {
			return d
		}
	}
	d := refWLC(ds)
	if d < 0 {
		return -1
	}
	e := c.get(f.VAddr)
	if e != nil && e.dest == ds[d].id {
		return d
	}
	if e != nil {
		c.del(e)
	}
	c.hash(&refEntry{key: f.VAddr, dest: ds[d].id, lastuse: now})
	return d
}

func refLBLCR(c *refCache, ds []refDest, l *Loads, f Flow, now, exp int64) int {
	c.timer(now)
	weight := func(id uint32) (int64, int) {
		if i := indexOf(ds, id); i >= 0 {
			return int64(ds[i].w), i
		}
		return int64(c.weights[id]), -1
	}
	oh := func(id uint32) int64 { return int64(l.Active(id))*256 + int64(l.Inactive(id)) }
	insert := func(e *refEntry, id uint32, check bool) {
		if check {
			for _, x := range e.set {
				if x == id {
					return
				}
			}
		}
		e.set = append([]uint32{id}, e.set...)
		e.lastmod = now
	}
	if e := c.get(f.VAddr); e != nil {
		e.lastuse = now
		// ip_vs_dest_set_min
		least := -1
		var loh, lw int64
		k := 0
		for ; k < len(e.set); k++ {
			w, i := weight(e.set[k])
			if i < 0 || ds[i].over {
				continue
			}
			if w > 0 {
				least, loh, lw = i, oh(e.set[k]), w
				break
			}
		}
		if least >= 0 {
			for k++; k < len(e.set); k++ {
				w, i := weight(e.set[k])
				if i >= 0 && ds[i].over {
					continue
				}
				doh := oh(e.set[k])
				if loh*w > doh*lw && i >= 0 {
					least, loh, lw = i, doh, w
				}
			}
		}
		if len(e.set) > 1 && now > e.lastmod+exp {
			// ip_vs_dest_set_max, then erase
			most := -1
			var moh, mw int64
			for k, id := range e.set {
				w, _ := weight(id)
				if most < 0 {
					if w > 0 {
						most, moh, mw = k, oh(id), w
					}
					continue
				}
				if moh*w < oh(id)*mw && w > 0 {
					most, moh, mw = k, oh(id), w
				}
			}
			if most >= 0 {
				e.set = append(e.set[:most:most], e.set[most+1:]...)
				e.lastmod = now
			}
		}
		if least >= 0 && !refLBOverloaded(ds, least) {
			return least
		}
		d := refWLC(ds)
		if d < 0 {
			return -1
		}
		insert(e, ds[d].id, true)
		return d
	}
	d := refWLC(ds)
	if d < 0 {
		return -1
	}
	e := &refEntry{key: f.VAddr, lastuse: now}
	c.hash(e)
	insert(e, ds[d].id, false)
	return d
}
