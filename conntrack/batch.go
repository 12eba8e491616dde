package conntrack

import (
	"math/bits"
	"runtime"
)

// batchChunk is how many keys LookupBatch carries through its phases at
// once, the dataplane's batch size. Its scratch lives on the stack; 64
// keys touch at most 128 header lines and 64 entry lines (12 KiB), which
// stay in L1 between the passes.
const batchChunk = 64

// noCandidate marks a key none of whose tags matched.
const noCandidate = ^uint32(0)

// placement is a key's two candidate buckets and its tag, computed once in
// the first passes of LookupBatch and reused by the later ones.
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
// work in passes over up to 64 keys so that the misses of different keys
// overlap, as DPDK's and VPP's bulk lookups do with prefetches: hash every
// key; load its two headers; pick the entry its tag points at; load those
// entries; then do the real lookups, which hit the caches. Go has no
// prefetch instruction, but the loads of one pass do not depend on each
// other, so an out-of-order core keeps many in flight, provided a pass
// spends few instructions per key: the core's window is a few hundred
// instructions, and a miss here costs about 450 ns (measured: with the
// hash call inside the header pass, about 80 instructions a key, the
// loads overlapped hardly at all).
//
// Each answer is as of some instant during the call: an insert that
// finished before LookupBatch was called is always seen, and one that
// races with the call may or may not be, as with Lookup.
func (t *Table) LookupBatch(keys []Key, out []Conn, found []bool) int {
	defer runtime.KeepAlive(t) // see newStore
	n := min(len(keys), len(out), len(found))
	for i := 0; i < n; i += batchChunk {
		t.lookupChunk(keys[i:min(i+batchChunk, n)], out[i:], found[i:])
	}
	return n
}

// lookupChunk runs the passes over at most batchChunk keys.
func (t *Table) lookupChunk(keys []Key, out []Conn, found []bool) {
	var (
		ws [batchChunk]keyWords
		pl [batchChunk]placement
	)
	s := t.conns
	keys = keys[:min(len(keys), batchChunk)]
	out = out[:len(keys)]
	found = found[:len(keys)]
	// Pass 1: hash every key. The hash is a call of about 80
	// instructions; it gets a pass of its own so that the load passes
	// below stay short (with it inside, the header pass took about 300 ns
	// a key at 10M entries instead of 30).
	var hs [batchChunk]uint64
	for i := range keys {
		ws[i] = keys[i].words()
		hs[i] = t.seed.hash(&ws[i])
	}
	// Pass 2: start the header misses of every key.
	for i := range keys {
		b1, b2, tag := s.place(hs[i])
		pl[i] = placement{b1, b2, tag}
		s.buckets[b1].used.Load()
		s.buckets[b2].used.Load()
	}
	// Pass 3: pick each key's candidate entry, the first matching tag in
	// b1 or else in b2. The headers arrive during this pass; it waits for
	// them but issues no new miss.
	var cand [batchChunk]uint32
	for i := range keys {
		p := &pl[i]
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
		cand[i] = slot
	}
	// Pass 4: start the entry misses, again in a loop of a few
	// instructions per key.
	for _, slot := range cand[:len(keys)] {
		if slot != noCandidate {
			s.entries[slot].meta.Load()
		}
	}
	// Pass 5: the lookups proper, on cached lines. As in Lookup, the clock
	// is read after the entries, so an entry judged live was live when it
	// was read; one reading serves the whole chunk.
	var vs [batchChunk]view
	for i := range keys {
		p := &pl[i]
		// A key lives in one slot at most (Insert keeps keys unique), so
		// the candidate, if it matches, is the answer the scan would find.
		// No matching tag in pass 3 means the key was not live then: a
		// live entry's tag is written before it is published and stays
		// until the slot is reused. That is an answer Lookup could have
		// given, so there is nothing more to read.
		var v view
		ok := false
		if cand[i] != noCandidate {
			if v, ok = s.match(cand[i], &ws[i]); !ok {
				v, ok = s.lookup(p.b1, p.b2, p.tag, &ws[i])
			}
		}
		vs[i], found[i] = v, ok
	}
	now := t.now()
	for i := range keys {
		if !found[i] || expired(vs[i].meta, now) {
			out[i], found[i] = Conn{}, false
			continue
		}
		out[i] = vs[i].conn()
	}
}

// tagMatches returns the mask of the slots of bucket b whose tag is tag,
// used or not, without a data-dependent branch: a stale tag only costs
// LookupBatch a wasted load.
func (s *store) tagMatches(b, tag uint32) uint32 {
	bk := &s.buckets[b]
	var m uint32
	for j := range bucketSlots {
		x := bk.tags[j].Load() ^ tag
		// (x-1)>>63 is 1 exactly when x is 0.
		m |= uint32((uint64(x)-1)>>63) << j
	}
	return m
}
