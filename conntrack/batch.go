package conntrack

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// batchChunk is how many keys LookupBatch carries through its stages at
// once, the dataplane's batch size. Its scratch lives on the stack; 64
// keys touch at most 128 header lines and 64 entry lines (12 KiB), which
// stay in L1 between the stages.
const batchChunk = 64

// batchGroup is how many keys one stage handles: the chunk is two groups,
// and while one group's lines are in flight the core works on the other.
// Smaller groups put the stages closer together, so fewer lines have
// arrived when the next stage reads them.
const batchGroup = 32

// noCandidate marks a key none of whose tags matched.
const noCandidate = ^uint32(0)

// placement is a key's two candidate buckets and its tag, computed once in
// the first stage of LookupBatch and reused by the later ones.
type placement struct {
	b1, b2, tag uint32
}

// LookupBatch looks up many keys at once: out[i] and found[i] receive what
// Lookup(&keys[i]) would return. It looks up the first n keys, n being the
// shortest of the three slices, and returns n. Like Lookup it takes no
// lock, never returns an expired entry and does not allocate.
//
// A single Lookup at a large table waits for two dependent memory round
// trips (the bucket headers, then the entry). LookupBatch does the same
// work in stages over groups of keys so that the misses of different keys
// overlap each other and the work on other keys, as DPDK's and VPP's bulk
// lookups do: hash a group's keys and prefetch their two headers; pick
// each key's candidate entry by tag and prefetch it; then do the real
// lookups, which hit the caches. The stages of consecutive groups are
// interleaved (the headers of group g+1 load while group g picks its
// candidates), and prefetch instructions, unlike loads, retire at once, so
// the core does not stall with a window full of loads waiting for DRAM.
//
// Each answer is as of some instant during the call: an insert that
// finished before LookupBatch was called is always seen, and one that
// races with the call may or may not be, as with Lookup.
func (t *Table) LookupBatch(keys []Key, out []Conn, found []bool) int {
	var sc BatchScratch
	return t.LookupBatchScratch(&sc, keys, out, found)
}

// BatchScratch is LookupBatch's working memory: each key's words,
// placement, candidate and meta word, and the addresses it prefetches. A
// caller that looks up batch after batch keeps one and passes it to
// LookupBatchScratch, so that a call does not first clear the few KiB a
// fresh one on the stack would take. Every call writes what it reads, so
// what an earlier call left there does not matter. One goroutine at a
// time may use it.
type BatchScratch struct {
	ws    [batchChunk]keyWords
	pl    [batchChunk]placement
	cand  [batchChunk]uint32
	metas [batchChunk]uint64 // a found entry's meta word, for the expiry check
	addrs [2 * batchGroup]uintptr
}

// LookupBatchScratch is LookupBatch with its working memory in sc.
func (t *Table) LookupBatchScratch(sc *BatchScratch, keys []Key, out []Conn, found []bool) int {
	n := min(len(keys), len(out), len(found))
	for i := 0; i < n; i += batchChunk {
		t.lookupChunk(sc, keys[i:min(i+batchChunk, n)], out[i:], found[i:])
	}
	runtime.KeepAlive(t) // see newStore
	return n
}

// lookupChunk runs the stages over at most batchChunk keys.
func (t *Table) lookupChunk(sc *BatchScratch, keys []Key, out []Conn, found []bool) {
	ws, pl, cand, metas, addrs := &sc.ws, &sc.pl, &sc.cand, &sc.metas, &sc.addrs
	s := t.conns
	n := min(len(keys), batchChunk)
	out = out[:n]
	found = found[:n]
	groups := (n + batchGroup - 1) / batchGroup
	// Step i runs stage 1 on group i, stage 2 on group i-1 and stage 3 on
	// group i-2.
	for step := range groups + 2 {
		if g := step; g < groups {
			// Stage 1: hash, place, prefetch both headers.
			a := 0
			for i := g * batchGroup; i < min(g*batchGroup+batchGroup, n); i++ {
				keys[i].wordsTo(&ws[i])
				b1, b2, tag := s.place(t.seed.hash(&ws[i]))
				pl[i] = placement{b1, b2, tag}
				addrs[a] = uintptr(unsafe.Pointer(s.bucket(b1)))
				addrs[a+1] = uintptr(unsafe.Pointer(s.bucket(b2)))
				a += 2
			}
			prefetch(addrs[:a])
		}
		if g := step - 1; g >= 0 && g < groups {
			// Stage 2: pick the candidate entry and prefetch it.
			a := 0
			lo, hi := g*batchGroup, min(g*batchGroup+batchGroup, n)
			s.candidates(pl[lo:hi], cand[lo:hi])
			for i := lo; i < hi; i++ {
				if c := cand[i]; c != noCandidate {
					addrs[a] = uintptr(unsafe.Pointer(s.entry(c)))
					a++
				}
			}
			prefetch(addrs[:a])
		}
		if g := step - 2; g >= 0 && g < groups {
			// Stage 3: the lookups proper, on cached lines.
			for i := g * batchGroup; i < min(g*batchGroup+batchGroup, n); i++ {
				// A key lives in one slot at most (Insert keeps keys
				// unique), so the candidate, if it matches, is the answer
				// the scan would find. No matching tag in stage 2 means
				// the key was not live then: a live entry's tag is written
				// before it is published and stays until the slot is
				// reused. That is an answer Lookup could have given, so
				// there is nothing more to read.
				ok := false
				if c := cand[i]; c != noCandidate {
					if metas[i], ok = s.matchConn(c, &ws[i], &out[i]); !ok {
						p := &pl[i]
						var v view
						if v, ok = s.lookup(p.b1, p.b2, p.tag, &ws[i]); ok {
							v.connTo(&out[i])
							metas[i] = v.meta
						}
					}
				}
				found[i] = ok
			}
			// While a sync master runs, the sync word of each entry
			// found, which the packet will read and write: prefetched
			// only now, once the group's entry lines have arrived, so
			// that its misses neither compete with theirs for the
			// core's outstanding misses nor go to keys not found.
			if sa := t.sync.Load(); sa != nil {
				a := 0
				for i := g * batchGroup; i < min(g*batchGroup+batchGroup, n); i++ {
					if slot := uint32(out[i].ref>>32) - 1; found[i] && slot < uint32(len(sa.conns)) {
						addrs[a] = uintptr(unsafe.Pointer(&sa.conns[slot]))
						a++
					}
				}
				prefetch(addrs[:a])
			}
		}
	}
	// As in Lookup, the clock is read after the entries, so an entry
	// judged live was live when it was read; one reading serves the chunk.
	now := t.now()
	for i := range n {
		if !found[i] || expired(metas[i], now) {
			out[i], found[i] = Conn{}, false
		}
	}
}

// matchConn is match for LookupBatch's last stage: when slot is a live
// entry with key w it writes the connection straight into *c and returns
// the entry's meta word, reading only the words a Conn needs (no view, no
// creation time).
func (s *store) matchConn(slot uint32, w *keyWords, c *Conn) (uint64, bool) {
	e := s.entry(slot)
	for {
		m1 := e.meta.Load()
		if status(m1) != statusLive {
			return 0, false
		}
		ports := e.ports.Load()
		match := ports&keyMask == w[4] &&
			e.caddr[0].Load() == w[0] && e.caddr[1].Load() == w[1] &&
			e.vaddr[0].Load() == w[2] && e.vaddr[1].Load() == w[3]
		bind := e.bind.Load()
		m2 := e.meta.Load()
		if m1&identityMask != m2&identityMask {
			continue // reused while we read it: look again
		}
		if !match {
			return 0, false
		}
		v := view{slot: slot, meta: m2, ports: ports, bind: bind}
		v.connTo(c)
		return m2, true
	}
}

// candidate picks a key's candidate entry: the first slot whose tag
// matches in b1, else in b2, else noCandidate.
func (s *store) candidate(p *placement) uint32 {
	m1 := s.tagMatches(p.b1, p.tag)
	m2 := s.tagMatches(p.b2, p.tag)
	slot := p.b1*bucketSlots + uint32(bits.TrailingZeros32(m1|1<<(bucketSlots-1)))
	alt := p.b2*bucketSlots + uint32(bits.TrailingZeros32(m2|1<<(bucketSlots-1)))
	if m1 == 0 {
		slot = alt
	}
	if m1|m2 == 0 {
		slot = noCandidate // a sure miss: nothing to load
	}
	return slot
}

// tagMatches returns the mask of the slots of bucket b whose tag is tag,
// used or not, without a data-dependent branch: a stale tag only costs
// LookupBatch a wasted load.
//
// It reads the tags two at a time, as seven 64-bit words (a bucket is
// 64-byte aligned, so each pair is one aligned word), and finds the zero
// 32-bit lanes of word^tag without a carry crossing between lanes: adding
// 0x7fffffff to a lane's low 31 bits sets its top bit exactly when those
// bits are not all zero.
func (s *store) tagMatches(b, tag uint32) uint32 {
	w := (*[bucketSlots / 2]atomic.Uint64)(unsafe.Pointer(&s.bucket(b).tags))
	t2 := uint64(tag) | uint64(tag)<<32
	var acc uint64
	for j := range bucketSlots / 2 {
		x := w[j].Load() ^ t2
		z := ^((x&0x7fffffff_7fffffff + 0x7fffffff_7fffffff) | x) & 0x80000000_80000000
		// Lane 0's flag (bit 31) goes to bit 2j, lane 1's (bit 63) to
		// bit 32+2j.
		acc |= z >> (31 - 2*j)
	}
	return uint32(acc) | uint32(acc>>32)<<1
}

// PrefetchInsert starts loading the cache lines that an Insert of k is
// about to read and write, and returns without waiting for them: the
// key's two bucket headers, the entry Insert will write when there is
// room or, when it will have to evict (the table at capacity, or both
// buckets full), every used entry of the bucket the eviction searches
// first (the candidates victimIn reads; the insert takes the victim's
// slot), and the expiry index words the new entry is filed in and the
// eviction reads. A worker calls it a few frames ahead of the frame that
// will insert, so those misses overlap the frames in between instead of
// stalling the insert. It changes nothing and is only a hint: the lines
// may be gone again by the time Insert runs.
func (t *Table) PrefetchInsert(k *Key) {
	w := k.words()
	s := t.conns
	b1, b2, _ := s.place(t.seed.hash(&w))
	u1 := s.bucket(b1).used.Load() & fullMask
	u2 := s.bucket(b2).used.Load() & fullMask
	var addrs [bucketSlots + 8]uintptr
	a := 0
	var b uint32 // the bucket the new entry goes to
	if s.live.Load() >= s.capacity || u1&u2 == fullMask {
		b, _ = s.evictionOrder(b1, b2)
		base := b * bucketSlots
		for u := s.bucket(b).used.Load() & fullMask; u != 0; u &= u - 1 {
			addrs[a] = uintptr(unsafe.Pointer(s.entry(base + uint32(bits.TrailingZeros32(u)))))
			a++
		}
	} else {
		u := u1
		b = b1
		if bits.OnesCount32(u2) < bits.OnesCount32(u1) {
			b, u = b2, u2 // freeSlot's choice
		}
		addrs[a] = uintptr(unsafe.Pointer(s.entry(b*bucketSlots + uint32(bits.TrailingZeros32(^u)))))
		a++
	}
	if s.due != nil {
		// The new entry's due and both buckets' group bounds, which the
		// eviction reads before it reads any other due.
		addrs[a] = uintptr(unsafe.Pointer(&s.due[b*bucketSlots]))
		addrs[a+1] = uintptr(unsafe.Pointer(&s.gdue[b1*bucketSlots/dueGroupSlots]))
		addrs[a+2] = uintptr(unsafe.Pointer(&s.gdue[b2*bucketSlots/dueGroupSlots]))
		a += 3
	}
	prefetch(addrs[:a])
	runtime.KeepAlive(t) // see newStore
}
