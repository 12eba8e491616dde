package sched

// LeastConn implements the four least-connection schedulers, each following
// its kernel file:
//
//	lc   net/netfilter/ipvs/ip_vs_lc.c   least (active<<8)+inactive; first of equals
//	wlc  net/netfilter/ipvs/ip_vs_wlc.c  least overhead/weight, by 64-bit cross-multiplication
//	sed  net/netfilter/ipvs/ip_vs_sed.c  least (active+1)/weight
//	nq   net/netfilter/ipvs/ip_vs_nq.c   the first idle dest, else as sed
//
// The kernel scans every dest per pick. Here a tournament tree (see tree) is
// kept current by the Loads hooks, so a pick is one atomic load; the tree's
// left-wins-ties merge reproduces the scan's first-wins tie-breaking. Only
// while a hook is mid-refresh can the root name a dest that has just become
// ineligible; then, and when the tree says nothing is eligible, the pick
// falls back to the kernel's linear scan, so it never returns an overloaded
// dest or a spurious "none".
type LeastConn struct {
	base
	kind lcKind
	t    *tree
}

type lcKind uint8

const (
	kindLC lcKind = iota
	kindWLC
	kindSED
	kindNQ
)

func newLeastConn(b *base, _ Flags, _ *Options) (Scheduler, error) {
	kinds := map[string]lcKind{"lc": kindLC, "wlc": kindWLC, "sed": kindSED, "nq": kindNQ}
	s := &LeastConn{base: *b, kind: kinds[b.name]}
	s.t = newTree(len(b.ids), s)
	for i, id := range b.ids {
		b.loads.attach(id, s.t, i)
	}
	s.t.rebuild()
	return s, nil
}

func (s *LeastConn) release() {
	for _, id := range s.ids {
		s.loads.detach(id, s.t)
	}
}

// eligible: all four skip overloaded dests and dests of weight 0.
func (s *LeastConn) eligible(i int) bool {
	return s.weights[i] > 0 && !s.overloaded(i)
}

// better reports whether dest r (later in the list) displaces dest l.
func (s *LeastConn) better(l, r int) bool {
	switch s.kind {
	case kindLC:
		return s.overhead(r) < s.overhead(l)
	case kindWLC:
		return s.overhead(l)*int64(s.weights[r]) > s.overhead(r)*int64(s.weights[l])
	case kindNQ:
		if s.active(l) == 0 {
			return false
		}
		if s.active(r) == 0 {
			return true
		}
	}
	return (s.active(l)+1)*int64(s.weights[r]) > (s.active(r)+1)*int64(s.weights[l])
}

func (s *LeastConn) Schedule(*Flow) int {
	if w := s.t.best(); w >= 0 && s.eligible(w) {
		return w
	}
	return s.scan()
}

// scan is the kernel's loop, used only when the tree is in flux.
func (s *LeastConn) scan() int {
	least := -1
	for i := range s.ids {
		if !s.eligible(i) {
			continue
		}
		if least < 0 {
			least = i
			if s.kind == kindNQ && s.active(i) == 0 {
				return i
			}
			continue
		}
		if s.kind == kindNQ && s.active(i) == 0 {
			return i
		}
		if s.better(least, i) {
			least = i
		}
	}
	return least
}
