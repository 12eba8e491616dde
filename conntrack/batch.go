package conntrack

import "math/bits"

// batchChunk is how many keys LookupBatch carries through its phases at
// once. Its scratch lives on the stack; 64 keys touch at most 128 header
// lines and 64 entry lines (12 KiB), which stay in L1 between the phases.
const batchChunk = 64

// placement is a key's two candidate buckets and its tag, computed once in
// the first phase of LookupBatch and reused by the later ones.
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
// work in three passes over the keys so that the misses of different keys
// overlap: the first hashes every key and loads its two headers, the
// second reads the tags (now cached) and loads the entry the tag points
// at, the third does the real lookup, which then hits the caches. The
// loads of one pass are independent of each other, so an out-of-order
// core keeps many of them in flight, as a prefetch would.
//
// The answer for each key is taken in the third pass, so an insert that
// finished before LookupBatch was called is always seen, and one that
// races with the call may or may not be, as with Lookup.
func (t *Table) LookupBatch(keys []Key, out []Conn, found []bool) int {
	n := min(len(keys), len(out), len(found))
	for i := 0; i < n; i += batchChunk {
		t.lookupChunk(keys[i:min(i+batchChunk, n)], out[i:], found[i:])
	}
	return n
}

// lookupChunk runs the three passes over at most batchChunk keys.
func (t *Table) lookupChunk(keys []Key, out []Conn, found []bool) {
	var (
		ws [batchChunk]keyWords
		pl [batchChunk]placement
	)
	s := t.conns
	keys = keys[:min(len(keys), batchChunk)]
	out = out[:len(keys)]
	found = found[:len(keys)]
	// Pass 1: hash, and start the header misses of every key.
	for i := range keys {
		ws[i] = keys[i].words()
		b1, b2, tag := s.place(t.seed.hash(&ws[i]))
		pl[i] = placement{b1, b2, tag}
		s.buckets[b1].used.Load()
		s.buckets[b2].used.Load()
	}
	// Pass 2: start the entry misses of the slots whose tags match.
	for i := range keys {
		p := &pl[i]
		if !s.touch(p.b1, p.tag) {
			s.touch(p.b2, p.tag)
		}
	}
	// Pass 3: the lookups proper, on cached lines. As in Lookup, the clock
	// is read after the entries, so an entry judged live was live when it
	// was read; one reading serves the whole chunk.
	var vs [batchChunk]view
	for i := range keys {
		p := &pl[i]
		v, ok := s.lookup(p.b1, p.b2, p.tag, &ws[i])
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

// touch loads the meta word of the first used slot of bucket b whose tag
// is tag, so that the entry's cache line is on its way before the lookup
// needs it. It reports whether a tag matched. The loaded value is not
// used: atomic loads are never removed by the compiler, so the load
// stays even though its result is dropped.
func (s *store) touch(b, tag uint32) bool {
	bk := &s.buckets[b]
	base := b * bucketSlots
	for used := bk.used.Load() & fullMask; used != 0; used &= used - 1 {
		i := uint32(bits.TrailingZeros32(used))
		if bk.tags[i].Load() == tag {
			s.entries[base+i].meta.Load()
			return true
		}
	}
	return false
}
