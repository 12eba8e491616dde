package sched

import "sync/atomic"

// tree is a tournament tree over a service's dests that keeps, at every
// inner node, the winner of a least-connection comparison between the
// winners of its two children. The left child always covers lower dest
// indices, and a right winner replaces a left one only if it is strictly
// better, so the root is exactly what the kernel's first-wins linear scan
// returns — provided the comparison is a strict weak order, which the
// cross-multiplied ratios of lc/wlc/sed/nq are.
//
// Loads refreshes the path from a dest's leaf to the root whenever one of
// that dest's counters or its overload flag changes, so Schedule is a single
// atomic load. Concurrent refreshes are made safe without locks by Jayanti's
// double refresh: each node is recomputed and CASed twice, so after an
// update returns, every ancestor holds a value computed after the update's
// change was visible. A 32-bit version in each node word defeats ABA.
// The second round is skipped when the first CAS succeeds: that value was
// computed from reads made after the change, and any slower writer that
// read earlier now fails its CAS on the bumped version.
type tree struct {
	n     int
	base  int // first leaf slot; a power of two
	nodes []atomic.Uint64
	// lc supplies eligibility and the comparison; a concrete pointer rather
	// than func values so the calls are direct on the hook path.
	lc *LeastConn
}

func newTree(n int, lc *LeastConn) *tree {
	base := 1
	for base < n {
		base <<= 1
	}
	t := &tree{n: n, base: base, nodes: make([]atomic.Uint64, 2*base), lc: lc}
	for i := 0; i < base; i++ {
		if i < n {
			t.nodes[base+i].Store(uint64(i + 1))
		}
	}
	return t
}

func winner(v uint64) int { return int(uint32(v)) - 1 }

func (t *tree) pick(a, b int) int {
	ea := a >= 0 && t.lc.eligible(a)
	eb := b >= 0 && t.lc.eligible(b)
	switch {
	case !ea && !eb:
		return -1
	case !ea:
		return b
	case !eb:
		return a
	case t.lc.better(a, b):
		return b
	default:
		return a
	}
}

func (t *tree) refresh(node int) {
	for range 2 {
		old := t.nodes[node].Load()
		w := t.pick(winner(t.nodes[2*node].Load()), winner(t.nodes[2*node+1].Load()))
		next := (old>>32+1)<<32 | uint64(uint32(w+1))
		if t.nodes[node].CompareAndSwap(old, next) {
			return
		}
	}
}

// update refreshes every ancestor of leaf i.
func (t *tree) update(i int) {
	if i < 0 || i >= t.n {
		return
	}
	for node := (t.base + i) / 2; node >= 1; node /= 2 {
		t.refresh(node)
	}
}

// rebuild recomputes every inner node bottom-up; used once after attaching.
func (t *tree) rebuild() {
	for node := t.base - 1; node >= 1; node-- {
		t.refresh(node)
	}
}

// best is the current winner, or -1.
func (t *tree) best() int {
	if t.base == 1 {
		// A single dest is its own root; the loop in update never runs.
		if t.n == 1 && t.lc.eligible(0) {
			return 0
		}
		return -1
	}
	return winner(t.nodes[1].Load())
}
