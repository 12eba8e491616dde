package conntrack

import (
	"github.com/afvs/afvs/internal/plainstore"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// bucketSlots is the number of entries one bucket header describes: 14
// four-byte tags plus the used mask and the latch fill exactly one 64-byte
// cache line, so a miss reads one line per candidate bucket.
const bucketSlots = 14

// bucket is the header of bucketSlots consecutive entries.
type bucket struct {
	// tags hold a 32-bit fragment of each slot's key hash (never 0 once
	// written). They are hints: a reader trusts only the entry itself,
	// and a stale tag costs one extra entry read.
	tags [bucketSlots]atomic.Uint32
	// used has bit i set while slot i is claimed. It is set after a claim
	// and cleared after a release, so a clear bit always means a free
	// slot; only the latch holder claims.
	used atomic.Uint32
	// latch serialises inserters whose keys hash to this bucket, which is
	// what makes "insert if absent" exact across queues. Readers, Touch,
	// Sweep and eviction never take it.
	latch atomic.Uint32
}

// entry is one connection or template: eight 64-bit words, 64 bytes, one
// cache line, no pointers. Every word is read and written atomically so a
// reader racing a writer sees whole words; the meta word's generation
// tells it whether the words it read belong to one lifetime.
type entry struct {
	caddr [2]atomic.Uint64
	vaddr [2]atomic.Uint64
	ports atomic.Uint64 // keyWords[4] | fwd<<fwdShift
	meta  atomic.Uint64 // see the meta layout below
	// since is a connection's creation time in table milliseconds (the age
	// that orders eviction) or a template's expiry.
	since atomic.Uint64
	// bind is dest<<32 | TemplateRef for a connection, dest<<32 | timeout
	// in milliseconds for a template.
	bind atomic.Uint64
}

// The meta word: every change of an entry's life or state is one
// compare-and-swap on it.
//
//	bits  0..38  payload: a connection's expiry (table ms), a template's control count
//	bit  39      slacked: the expiry is a connection's exact one plus its slack (see slack)
//	bits 40..43  State
//	bits 44..45  status: free, busy (being written), live, zombie (deleted template still in use)
//	bits 46..63  generation, incremented on every release
//
// 39 bits of milliseconds are over 17 years of table time.
const (
	payloadMask  = 1<<39 - 1
	slackedBit   = 1 << 39
	stateShift   = 40
	statusShift  = 44
	genShift     = 46
	genMask      = 1<<18 - 1
	identityMask = 1<<64 - 1<<statusShift // status and generation

	statusFree   = 0
	statusBusy   = 1
	statusLive   = 2
	statusZombie = 3
)

func payload(m uint64) uint64    { return m & payloadMask }
func stateOf(m uint64) State     { return State(m >> stateShift & 0xf) }
func status(m uint64) uint64     { return m >> statusShift & 3 }
func generation(m uint64) uint64 { return m >> genShift }

func slacked(m uint64) bool { return m&slackedBit != 0 }

func makeMeta(gen, st uint64, s State, pl uint64) uint64 {
	if pl > payloadMask {
		pl = payloadMask
	}
	return (gen&genMask)<<genShift | st<<statusShift | uint64(s)<<stateShift | pl
}

// slackedMeta is the meta word of a live connection in state s whose
// stored expiry exp includes its slack.
func slackedMeta(gen uint64, s State, exp uint64) uint64 {
	return makeMeta(gen, statusLive, s, exp) | slackedBit
}

// view is a consistent snapshot of one live entry.
type view struct {
	slot  uint32
	meta  uint64
	ports uint64
	bind  uint64
	since uint64
}

// store is a bounded hash table of entries in two flat, pointer-free
// arrays allocated once, in one region outside the Go heap (see region):
// all bucket headers, then all entries, bucket b's entries being slots
// b*bucketSlots to b*bucketSlots+bucketSlots-1. A key lives in one of two
// candidate buckets (two-choice hashing keeps buckets evenly filled up to
// high load).
//
// The headers have an array of their own rather than each sitting beside
// its entries: a lookup reads two headers and at most one entry, and
// packed together the headers take a fifteenth of the memory, so far more
// of them, and of the page-table entries that map them, stay in the
// caches than if they were spread through the entries. An entry beside
// its header would come cheaper, sharing the header's page, but then both
// header reads would cost what the entry read costs now, and a lookup
// that misses, as every new connection's does, reads headers alone.
//
// The words every lookup reads come first; the two that inserts and
// releases write from every worker, live and cursor, follow a line of
// padding, each on a line of its own, so that a new connection on one
// core does not evict the bucket count and the slices from the others.
type store struct {
	buckets  []bucket
	entries  []entry
	due      []atomic.Uint32 // expiry index, connections only; see expiry.go
	gdue     []atomic.Uint32
	nb       uint32
	capacity int64
	mem      region
	cleanup  runtime.Cleanup

	_      lineGap
	live   atomic.Int64 // entries live or zombie, at most capacity
	_      lineGap
	cursor atomic.Uint64
	_      lineGap
}

// bucket returns bucket b's header; b past the end panics.
func (s *store) bucket(b uint32) *bucket { return &s.buckets[b] }

// entry returns slot's entry; a slot past the end panics.
func (s *store) entry(slot uint32) *entry { return &s.entries[slot] }

// slots is the number of entries, bucketSlots per bucket.
func (s *store) slots() uint32 { return uint32(len(s.entries)) }

// loadFactor sizes the slot arrays so the table at capacity is 80% full,
// where two-choice buckets of 14 almost never overflow.
const loadFactor = 0.8

func bucketsFor(capacity int) int {
	return int(float64(capacity)/(bucketSlots*loadFactor)) + 2
}

// storeBytes is what newStore(capacity, index) allocates.
func storeBytes(capacity int, index bool) uint64 {
	if capacity == 0 {
		return 0
	}
	nb := uint64(bucketsFor(capacity))
	n := nb*uint64(sizeofBucket) + nb*bucketSlots*uint64(sizeofEntry)
	if index {
		n += 4 * (nb*bucketSlots + uint64(dueGroups(int(nb))))
	}
	return n
}

// newStore allocates a store; index adds the expiry index (expiry.go)
// after the entries, in the same region.
func newStore(capacity int, index bool) (*store, error) {
	nb := bucketsFor(capacity)
	headers := uintptr(nb) * sizeofBucket
	mem, err := allocRegion(uintptr(storeBytes(capacity, index)))
	if err != nil {
		return nil, err
	}
	s := &store{
		buckets:  unsafe.Slice((*bucket)(unsafe.Pointer(&mem.mem[0])), nb),
		entries:  unsafe.Slice((*entry)(unsafe.Pointer(&mem.mem[headers])), nb*bucketSlots),
		nb:       uint32(nb),
		capacity: int64(capacity),
		mem:      mem,
	}
	if index {
		off := headers + uintptr(nb)*bucketSlots*sizeofEntry
		s.due = unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&mem.mem[off])), nb*bucketSlots)
		off += uintptr(nb) * bucketSlots * 4
		s.gdue = unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&mem.mem[off])), dueGroups(nb))
		for i := range s.due {
			s.due[i].Store(noDue)
		}
		for i := range s.gdue {
			s.gdue[i].Store(noDue)
		}
	}
	if mem.mapped() {
		// A table its owner forgot to Close is unmapped once the
		// collector finds it unreachable. Table's methods keep the Table
		// alive while they run, so this cannot pull memory out from
		// under a call in flight.
		s.cleanup = runtime.AddCleanup(s, region.free, mem)
	}
	return s, nil
}

// close gives the region back. The store must not be used afterwards; its
// arrays are emptied so that a stray call panics instead of faulting.
func (s *store) close() {
	s.cleanup.Stop()
	s.mem.free()
	s.mem = region{}
	s.buckets, s.entries, s.nb = nil, nil, 0
	s.due, s.gdue = nil, nil
}

// place maps a hash to its two candidate buckets and its tag.
func (s *store) place(h uint64) (b1, b2, tag uint32) {
	b1 = uint32((h & 0xffff_ffff) * uint64(s.nb) >> 32)
	h2 := h * 0x9e37_79b9_7f4a_7c15
	b2 = uint32((h2 >> 32) * uint64(s.nb) >> 32)
	if b2 == b1 {
		b2++
		if b2 == s.nb {
			b2 = 0
		}
	}
	return b1, b2, uint32(h>>32) | 1
}

// find looks for a live entry with key w in bucket b without any lock.
// Only slots set in used (the bucket's used mask as the caller loaded it)
// are examined: a slot claimed after that load is an insert that had not
// finished when the lookup started. The tags are compared all at once
// (tagMatches), so a miss, which is what an insert mostly meets, costs no
// loop over the used slots.
func (s *store) find(b, used, tag uint32, w *keyWords) (view, bool) {
	base := b * bucketSlots
	for used &= s.tagMatches(b, tag) & fullMask; used != 0; used &= used - 1 {
		i := uint32(bits.TrailingZeros32(used))
		if v, ok := s.match(base+i, w); ok {
			return v, true
		}
	}
	return view{}, false
}

// match reads slot if it is a live entry with key w. The entry's key words
// are bracketed by two loads of its meta word: if status and generation
// did not change, the words belong to one lifetime.
func (s *store) match(slot uint32, w *keyWords) (view, bool) {
	e := s.entry(slot)
	for {
		m1 := e.meta.Load()
		if status(m1) != statusLive {
			return view{}, false
		}
		ports := e.ports.Load()
		match := ports&keyMask == w[4] &&
			e.caddr[0].Load() == w[0] && e.caddr[1].Load() == w[1] &&
			e.vaddr[0].Load() == w[2] && e.vaddr[1].Load() == w[3]
		bind := e.bind.Load()
		since := e.since.Load()
		m2 := e.meta.Load()
		if m1&identityMask != m2&identityMask {
			continue // reused while we read it: look again
		}
		if !match {
			return view{}, false
		}
		return view{slot: slot, meta: m2, ports: ports, bind: bind, since: since}, true
	}
}

// lookup finds a live entry with key w in its candidate buckets b1 and b2,
// expired or not. Both headers are loaded before either is scanned so
// their cache misses overlap: a lookup waits for about two memory round
// trips (the headers, then the entry) instead of three.
func (s *store) lookup(b1, b2, tag uint32, w *keyWords) (view, bool) {
	u1 := s.bucket(b1).used.Load()
	u2 := s.bucket(b2).used.Load()
	if v, ok := s.find(b1, u1, tag, w); ok {
		return v, true
	}
	return s.find(b2, u2, tag, w)
}

// snapshot reads slot i if it is live (or a zombie, when zombies is set).
func (s *store) snapshot(i uint32, zombies bool) (keyWords, view, bool) {
	e := s.entry(i)
	for {
		m1 := e.meta.Load()
		st := status(m1)
		if st != statusLive && !(zombies && st == statusZombie) {
			return keyWords{}, view{}, false
		}
		w := keyWords{e.caddr[0].Load(), e.caddr[1].Load(), e.vaddr[0].Load(), e.vaddr[1].Load(), 0}
		ports := e.ports.Load()
		w[4] = ports & keyMask
		bind := e.bind.Load()
		since := e.since.Load()
		m2 := e.meta.Load()
		if m1&identityMask == m2&identityMask {
			return w, view{slot: i, meta: m2, ports: ports, bind: bind, since: since}, true
		}
	}
}

func (s *store) lock(b1, b2 uint32) {
	if b1 > b2 {
		b1, b2 = b2, b1
	}
	s.bucket(b1).lock()
	s.bucket(b2).lock()
}

// unlock releases both latches. A plain store releases a spin latch on
// amd64: every store made under the latch is seen before it.
func (s *store) unlock(b1, b2 uint32) {
	plainstore.Store32(&s.bucket(b1).latch, 0)
	plainstore.Store32(&s.bucket(b2).latch, 0)
}

// lock spins: the latch is held for the few dozen nanoseconds an insert
// takes, so yielding after a short spin is enough on a preempted holder.
func (b *bucket) lock() {
	for i := 0; !b.latch.CompareAndSwap(0, 1); i++ {
		if i >= 8 {
			runtime.Gosched()
		}
	}
}

const fullMask = 1<<bucketSlots - 1

// freeSlot picks a free slot in the emptier of the two buckets. The caller
// holds both latches, so a clear used bit cannot be taken by anyone else.
func (s *store) freeSlot(b1, b2 uint32) (uint32, bool) {
	u1 := s.bucket(b1).used.Load() & fullMask
	u2 := s.bucket(b2).used.Load() & fullMask
	b, u := b1, u1
	if bits.OnesCount32(u2) < bits.OnesCount32(u1) {
		b, u = b2, u2
	}
	if u == fullMask {
		return 0, false
	}
	return b*bucketSlots + uint32(bits.TrailingZeros32(^u)), true
}

// reserve takes one unit of capacity. It compares before it adds so the
// count never reads above capacity, not even for a moment.
func (s *store) reserve() bool {
	for {
		n := s.live.Load()
		if n >= s.capacity {
			return false
		}
		if s.live.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// publish fills a free slot the caller found with freeSlot (latches held,
// capacity reserved) and makes it visible with one store of meta.
//
// The slot is free and its used bit clear, so no other goroutine writes
// its words or its tag while it is busy: the stores need ordering, not
// atomicity against other writers, and are the relaxed ones of
// publish_amd64.go. The used bit is an atomic OR because releases clear
// other bits of the mask without the latch.
func (s *store) publish(slot, tag uint32, w *keyWords, fwd uint8, since, bind uint64, st State, pl uint64) uint64 {
	e := s.entry(slot)
	gen := generation(e.meta.Load())
	plainstore.Store64(&e.meta, makeMeta(gen, statusBusy, None, 0))
	plainstore.Store32(&s.bucket(slot / bucketSlots).tags[slot%bucketSlots], tag)
	storeWords(e, &entryWords{w[0], w[1], w[2], w[3], w[4] | uint64(fwd)<<fwdShift, since, bind})
	// A slot makeRoom released in place is still marked used; only the
	// latch holder sets bits, so a set bit here is that claim.
	if u, bit := &s.bucket(slot/bucketSlots).used, uint32(1)<<(slot%bucketSlots); u.Load()&bit == 0 {
		u.Or(bit)
	}
	// pl may carry slackedBit (Insert), which is no part of the expiry.
	if s.due != nil {
		s.setDue(slot, min(pl&^slackedBit, payloadMask))
	}
	m := makeMeta(gen, statusLive, st, pl&^slackedBit) | pl&slackedBit
	plainstore.Store64(&e.meta, m)
	return m
}

// entryWords are the words of an entry that publish writes before its
// meta word, in storeWords' order.
type entryWords struct {
	caddr0, caddr1, vaddr0, vaddr1, ports, since, bind uint64
}

// release frees slot if its meta is still m. Exactly one caller wins for
// a given lifetime; the winner owns the accounting for it and must have
// read the entry's words before calling.
func (s *store) release(slot uint32, m uint64) bool {
	if !s.releaseKeep(slot, m) {
		return false
	}
	s.live.Add(-1)
	return true
}

// releaseKeep is release for a caller that keeps the entry's unit of
// capacity, to insert in its place (makeRoom): the live count does not
// move.
func (s *store) releaseKeep(slot uint32, m uint64) bool {
	e := s.entry(slot)
	if !e.meta.CompareAndSwap(m, makeMeta(generation(m)+1, statusFree, None, 0)) {
		return false
	}
	if s.due != nil {
		// Before the used bit clears: only then may an inserter take the
		// slot and file its own expiry. A plain store is enough: the
		// atomic AND below orders it, and the CAS above made this
		// goroutine the only writer of the slot's lifetime.
		plainstore.Store32(&s.due[slot], noDue)
	}
	s.bucket(slot / bucketSlots).used.And(^uint32(1 << (slot % bucketSlots)))
	return true
}

// releaseClaimed is releaseKeep for a caller that holds the latch of slot's
// bucket and publishes a new entry in slot before it lets go: the slot
// stays claimed, its used bit set, so nobody else can take it and
// nothing has to clear and set the bit again. Its due is left for
// publish to replace; until then the entry's status is free, which every
// reader checks before it trusts a used slot.
func (s *store) releaseClaimed(slot uint32, m uint64) bool {
	return s.entry(slot).meta.CompareAndSwap(m, makeMeta(generation(m)+1, statusFree, None, 0))
}

// bytes is the memory the store holds.
func (s *store) bytes() uintptr { return uintptr(len(s.mem.mem)) }
