package sched

import "time"

// LBLC is locality-based least-connection, following
// net/netfilter/ipvs/ip_vs_lblc.c: the packet's destination address (a
// cache cluster's origin server) sticks to the dest cached for it, unless
// that dest is gone, has weight 0, or is overloaded by lblc's own rule —
// more active connections than its weight while some dest is below half
// its weight. Then wlc picks afresh and the cache entry is replaced. The
// cached dest's -x/-y flag is not consulted, as in the kernel.
//
// The wlc pick uses the same tree as WLC, so a miss costs O(1) as well.
type LBLC struct {
	base
	cache *Cache
	wlc   *LeastConn
	now   func() int64
}

// newLocality builds what lblc and lblcr share: the cache (taken over from
// the previous scheduler, if any), the wlc tree for misses, and the clock.
func newLocality(b *base, opt *Options, expire time.Duration, prev *Cache) (*Cache, *LeastConn, func() int64) {
	clock := opt.Now
	now := func() int64 { return int64(clock()) }
	wb := *b
	wb.name = "wlc"
	w, _ := newLeastConn(&wb, 0, opt)
	c := newCache(expire, now(), prev)
	c.remember(b)
	return c, w.(*LeastConn), now
}

func newLBLC(b *base, _ Flags, opt *Options) (Scheduler, error) {
	var prev *Cache
	if p, ok := prevOf[*LBLC](opt); ok {
		prev = p.cache
	}
	c, w, now := newLocality(b, opt, opt.LBLCExpiration, prev)
	return &LBLC{base: *b, cache: c, wlc: w, now: now}, nil
}

func (s *LBLC) release() { s.wlc.release() }

// lbOverloaded is is_overloaded() of ip_vs_lblc.c and ip_vs_lblcr.c.
func (b *base) lbOverloaded(d int) bool {
	if b.active(d) <= int64(b.weights[d]) {
		return false
	}
	for i, w := range b.weights {
		if b.active(i)*2 < int64(w) {
			return true
		}
	}
	return false
}

func (s *LBLC) Schedule(f *Flow) int {
	now := s.now()
	s.cache.tick(now)
	if e := s.cache.get(&f.VAddr); e != nil {
		e.lastuse.Store(now)
		if d, ok := s.index[e.dest.Load()]; ok && s.weights[d] > 0 && !s.lbOverloaded(d) {
			return d
		}
	}
	d := s.wlc.Schedule(f)
	if d < 0 {
		return -1
	}
	id := s.ids[d]
	c := s.cache
	c.mu.Lock()
	// ip_vs_lblc_new: keep an entry that already names this dest, else
	// replace it with a fresh one.
	e := c.get(&f.VAddr)
	if e == nil || e.dest.Load() != id {
		if e != nil {
			c.unlink(e)
		}
		ne := &cacheEntry{key: f.VAddr}
		ne.lastuse.Store(now)
		ne.dest.Store(id)
		c.add(ne)
	}
	c.mu.Unlock()
	return d
}

// Cache exposes the scheduler's cache, for tests and tooling.
func (s *LBLC) Cache() *Cache { return s.cache }
