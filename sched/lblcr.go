package sched

import "slices"

// LBLCR is locality-based least-connection with replication, following
// net/netfilter/ipvs/ip_vs_lblcr.c: each destination address maps to a set
// of dests. A pick takes the set's least loaded member (weighted, as wlc);
// if the set has more than one member and was not changed for the
// expiration, its most loaded member is dropped first. If the chosen member
// is overloaded by lblc's rule (or there is none), wlc over all dests picks
// one and it joins the set.
type LBLCR struct {
	base
	cache *Cache
	wlc   *LeastConn
	now   func() int64
	exp   int64
}

func newLBLCR(b *base, _ Flags, opt *Options) (Scheduler, error) {
	var prev *Cache
	if p, ok := prevOf[*LBLCR](opt); ok {
		prev = p.cache
	}
	c, w, now := newLocality(b, opt, opt.LBLCRExpiration, prev)
	return &LBLCR{base: *b, cache: c, wlc: w, now: now, exp: int64(opt.LBLCRExpiration)}, nil
}

func (s *LBLCR) release() { s.wlc.release() }

// weightOf is the dest's live weight, or the last weight it had while in
// the service. ok is false for a dest that is not in the service now (the
// kernel's !IP_VS_DEST_F_AVAILABLE).
func (s *LBLCR) weightOf(id uint32) (w int64, idx int, ok bool) {
	if i, in := s.index[id]; in {
		return int64(s.weights[i]), i, true
	}
	if m := s.cache.weights.Load(); m != nil {
		return int64((*m)[id]), -1, false
	}
	return 0, -1, false
}

// setMin is ip_vs_dest_set_min: the weighted least loaded available member.
func (s *LBLCR) setMin(set *destSet) int {
	least, lw := -1, int64(0)
	var loh int64
	for _, id := range set.ids {
		w, i, ok := s.weightOf(id)
		if !ok || s.overloaded(i) {
			continue
		}
		if least < 0 {
			if w > 0 {
				least, lw, loh = i, w, s.overhead(i)
			}
			continue
		}
		doh := s.overhead(i)
		if loh*w > doh*lw {
			least, lw, loh = i, w, doh
		}
	}
	return least
}

// setMax is ip_vs_dest_set_max: the weighted most loaded member with a
// positive weight, available or not.
func (s *LBLCR) setMax(set *destSet) (uint32, bool) {
	var most uint32
	found := false
	var mw, moh int64
	for _, id := range set.ids {
		w, _, _ := s.weightOf(id)
		doh := s.loads.overhead(id)
		if !found {
			if w > 0 {
				most, mw, moh, found = id, w, doh, true
			}
			continue
		}
		if moh*w < doh*mw && w > 0 {
			most, mw, moh = id, w, doh
		}
	}
	return most, found
}

func (set *destSet) with(id uint32, now int64) *destSet {
	return &destSet{ids: append([]uint32{id}, set.ids...), lastmod: now}
}

func (set *destSet) without(id uint32, now int64) *destSet {
	i := slices.Index(set.ids, id)
	if i < 0 {
		return set
	}
	ids := slices.Delete(slices.Clone(set.ids), i, i+1)
	return &destSet{ids: ids, lastmod: now}
}

func (s *LBLCR) Schedule(f *Flow) int {
	now := s.now()
	c := s.cache
	c.tick(now)
	e := c.get(&f.VAddr)
	if e != nil {
		e.lastuse.Store(now)
		set := e.set.Load()
		d := s.setMin(set)
		if len(set.ids) > 1 && now > set.lastmod+s.exp {
			c.mu.Lock()
			if set = e.set.Load(); len(set.ids) > 1 {
				if m, ok := s.setMax(set); ok {
					e.set.Store(set.without(m, now))
				}
			}
			c.mu.Unlock()
		}
		if d >= 0 && !s.lbOverloaded(d) {
			return d
		}
		d = s.wlc.Schedule(f)
		if d < 0 {
			return -1
		}
		c.mu.Lock()
		if set = e.set.Load(); !slices.Contains(set.ids, s.ids[d]) {
			e.set.Store(set.with(s.ids[d], now))
		}
		c.mu.Unlock()
		return d
	}
	d := s.wlc.Schedule(f)
	if d < 0 {
		return -1
	}
	c.mu.Lock()
	// ip_vs_lblcr_new: reuse an entry another worker just made.
	if e = c.get(&f.VAddr); e == nil {
		e = &cacheEntry{key: f.VAddr}
		e.lastuse.Store(now)
		e.set.Store(&destSet{})
		c.add(e)
	}
	e.set.Store(e.set.Load().with(s.ids[d], now))
	c.mu.Unlock()
	return d
}

// Cache exposes the scheduler's cache, for tests and tooling.
func (s *LBLCR) Cache() *Cache { return s.cache }
