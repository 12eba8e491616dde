package conntrack

import (
	"fmt"
	"github.com/afvs/afvs/internal/plainstore"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Connection sync (IPVS's ip_vs_sync.c) needs three things per entry that
// the 64-byte entry has no room for: the incoming packet count (in_pkts),
// the state last sent (old_state) and when the copy last sent runs out on
// the backup (sync_endtime). They live in a side array of one word per
// slot, for connections and for templates, allocated by EnableSync the
// first time a sync master starts, so a director that never syncs spends
// nothing on them. The dataplane decides with them; the table only stores
// them and resets a slot's word when an entry is made in it. Like the
// slot arrays they live outside the Go heap, faulted in when allocated,
// and while they are in use LookupBatch prefetches the word of each
// entry it finds, once the entry's line has arrived, so a frame does not
// wait for a second miss. Most packets only count (SyncCounter.Count); the full
// decision reads and writes the word at the few that may be due.
//
// A connection's word is single-writer: a flow's packets arrive on one
// receive queue, whose worker is the only goroutine counting it and
// deciding for it, so Count and the full decision (SyncCounter.Info,
// then SyncCounter.Set) load the word and store it back with a plain
// store (plainstore.Unordered64), without a compare-and-swap's lock prefix, which
// waits for every earlier store to leave the store buffer: at a large
// table, where stores wait for cache misses, that is a memory round trip.
// When two queues serve one flow at the same instant (the NIC's
// indirection table was changed under it, say), one queue's store may
// overwrite the other's: a packet goes uncounted, which moves the flow's
// next sync by one packet; or both decide to send at the same count, or
// one undoes the decision the other just recorded, so the flow may be
// sent once more than needed. A store from a Conn whose entry was
// released and its slot reused meanwhile can likewise overwrite the new
// entry's word (resetSync) with the old one's count and state, shifting
// that entry's first sync. Either way only when a sync message is sent
// changes; no entry, state or count of anything else does. The kernel's
// in_pkts is an atomic_t and its count exact, but ip_vs_sync_conn_needed
// reads and writes old_state with plain accesses as well, and
// compare-and-swaps only sync_endtime. A template's word is shared by the
// connections it controls, which different queues serve, so its decision
// is compare-and-swapped (SetTemplateSyncInfo).

// SyncInfo is one entry's sync bookkeeping.
type SyncInfo struct {
	// Pkts is the entry's incoming packet count (24 bits; the caller keeps
	// it within MaxSyncPkts).
	Pkts uint32
	// OldState is the state the entry was last sent in: a State for a
	// connection, IPVS's template state for a template.
	OldState uint8
	// EndTime is when the copy last sent expires on the backup, in table
	// milliseconds (NowMillis), with a retry count in its low two bits.
	EndTime uint64
}

// MaxSyncPkts is the largest packet count a SyncInfo holds.
const MaxSyncPkts = 1<<24 - 1

// The packed word: EndTime in bits 0..35 (2^36 ms is over two years),
// OldState in 36..39, Pkts in 40..63.
const syncEndMask = 1<<36 - 1

func (s SyncInfo) pack() uint64 {
	return uint64(min(s.Pkts, MaxSyncPkts))<<40 | uint64(s.OldState&0xf)<<36 | s.EndTime&syncEndMask
}

func unpackSync(w uint64) SyncInfo {
	return SyncInfo{Pkts: uint32(w >> 40), OldState: uint8(w >> 36 & 0xf), EndTime: w & syncEndMask}
}

// syncArrays are the side arrays, indexed by slot, in one region.
type syncArrays struct {
	conns   []atomic.Uint64
	tmpls   []atomic.Uint64
	mem     region
	cleanup runtime.Cleanup
}

// syncMu serialises EnableSync's one allocation.
var syncMu sync.Mutex

// EnableSync allocates the per-entry sync words (8 bytes per connection
// and template slot) if they are not there yet. Entries made before it
// start with a zero word. It is idempotent and safe beside the workers;
// the words are freed with the table.
func (t *Table) EnableSync() error {
	defer runtime.KeepAlive(t) // see newStore
	syncMu.Lock()
	defer syncMu.Unlock()
	if t.sync.Load() != nil {
		return nil
	}
	nc, nt := len(t.conns.entries), 0
	if t.tmpls != nil {
		nt = len(t.tmpls.entries)
	}
	mem, err := allocRegion(uintptr(8 * (nc + nt)))
	if err != nil {
		return fmt.Errorf("conntrack: sync words for %d slots: %w", nc+nt, err)
	}
	words := unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&mem.mem[0])), nc+nt)
	a := &syncArrays{conns: words[:nc:nc], tmpls: words[nc:], mem: mem}
	if mem.mapped() {
		a.cleanup = runtime.AddCleanup(a, region.free, mem)
	}
	t.sync.Store(a)
	return nil
}

// closeSync frees the sync words; Close calls it.
func (t *Table) closeSync() {
	if a := t.sync.Swap(nil); a != nil {
		a.cleanup.Stop()
		a.mem.free()
	}
}

// NowMillis is the table's clock: milliseconds since New.
func (t *Table) NowMillis() uint64 { return t.now() }

// Timeout is the table's timeout for state s now.
func (t *Table) Timeout(s State) time.Duration {
	return time.Duration(t.timeouts.of(s)) * time.Millisecond
}

// resetSync starts a new entry's word: no packet, state NONE, and the end
// time its creation, rounded down to a multiple of 4 as the kernel's
// ip_vs_conn_new sets sync_endtime.
func resetSync(a []atomic.Uint64, slot uint32, now uint64) {
	a[slot].Store(SyncInfo{EndTime: now &^ 3}.pack())
}

// SyncInfo returns the sync word of c's entry and its raw value for
// SetSyncInfo; ok is false when EnableSync has not run or c names no
// entry.
func (t *Table) SyncInfo(c *Conn) (info SyncInfo, raw uint64, ok bool) {
	defer runtime.KeepAlive(t) // see newStore
	a := t.sync.Load()
	slot := uint32(c.ref>>32) - 1
	if a == nil || slot >= uint32(len(a.conns)) {
		return SyncInfo{}, 0, false
	}
	raw = a.conns[slot].Load()
	return unpackSync(raw), raw, true
}

// SetSyncInfo replaces c's sync word with info if it still holds raw,
// and reports whether it did (another queue may have counted a packet of
// the same flow meanwhile; the caller reads again).
func (t *Table) SetSyncInfo(c *Conn, raw uint64, info SyncInfo) bool {
	defer runtime.KeepAlive(t) // see newStore
	a := t.sync.Load()
	slot := uint32(c.ref>>32) - 1
	if a == nil || slot >= uint32(len(a.conns)) {
		return false
	}
	return a.conns[slot].CompareAndSwap(raw, info.pack())
}

// TemplateSyncInfo is SyncInfo for the template ref names.
func (t *Table) TemplateSyncInfo(ref TemplateRef) (info SyncInfo, raw uint64, ok bool) {
	defer runtime.KeepAlive(t) // see newStore
	a := t.sync.Load()
	slot := uint32(ref&0xffffff) - 1
	if a == nil || ref == 0 || slot >= uint32(len(a.tmpls)) {
		return SyncInfo{}, 0, false
	}
	raw = a.tmpls[slot].Load()
	return unpackSync(raw), raw, true
}

// SetTemplateSyncInfo is SetSyncInfo for the template ref names.
func (t *Table) SetTemplateSyncInfo(ref TemplateRef, raw uint64, info SyncInfo) bool {
	defer runtime.KeepAlive(t) // see newStore
	a := t.sync.Load()
	slot := uint32(ref&0xffffff) - 1
	if a == nil || ref == 0 || slot >= uint32(len(a.tmpls)) {
		return false
	}
	return a.tmpls[slot].CompareAndSwap(raw, info.pack())
}

// Template returns the persistence template that controls c, 0 if none.
func (c *Conn) Template() TemplateRef { return c.tmpl }

// TemplateInfo returns a live template's key, real server and timeout
// (what a sync message carries for it).
func (t *Table) TemplateInfo(ref TemplateRef) (k Key, dest uint32, timeout time.Duration, ok bool) {
	defer runtime.KeepAlive(t) // see newStore
	slot, _, ok := t.templateEntry(ref)
	if !ok {
		return Key{}, 0, 0, false
	}
	w, v, ok := t.tmpls.snapshot(slot, true)
	if !ok || !ref.matches(v.meta) {
		return Key{}, 0, 0, false
	}
	return w.key(), uint32(v.bind >> 32), time.Duration(uint32(v.bind)) * time.Millisecond, true
}

// SyncResult is what SyncConn or SyncTemplate did with a received entry.
type SyncResult uint8

const (
	// SyncInserted: a new entry was made.
	SyncInserted SyncResult = iota
	// SyncUpdated: the entry existed; its state and timer were refreshed.
	SyncUpdated
	// SyncStale: the entry exists with another real server and the
	// message says the sender's copy is inactive: it describes the
	// connection the entry replaced, and is ignored (ip_vs_proc_conn).
	SyncStale
	// SyncFull: no room; nothing changed.
	SyncFull
	// SyncInvalid: a timeout outside 1ms..MaxTimeout; nothing changed.
	SyncInvalid
)

func (r SyncResult) String() string {
	switch r {
	case SyncInserted:
		return "inserted"
	case SyncUpdated:
		return "updated"
	case SyncStale:
		return "stale"
	case SyncFull:
		return "full"
	case SyncInvalid:
		return "invalid"
	}
	return "syncresult(?)"
}

// SyncConn installs a connection a sync master sent, as a backup's
// ip_vs_proc_conn does: an entry for k with another real server is
// replaced, unless inactive says the message is about the connection that
// entry replaced (then it is ignored); an entry with the same real server
// takes state st and runs out timeout from now; otherwise a new entry is
// made in state st with that timeout, bound to dest with forwarding method
// fwd, controlled by no template (the kernel does not link synced
// connections to their templates). The real server's active and inactive
// counts follow through Hooks as for any entry. info becomes the entry's
// sync word when EnableSync has run. Safe beside the workers.
func (t *Table) SyncConn(k *Key, dest uint32, fwd uint8, st State, timeout time.Duration, inactive bool, info SyncInfo) SyncResult {
	defer runtime.KeepAlive(t) // see newStore
	if timeout < time.Millisecond || timeout > MaxTimeout {
		return SyncInvalid
	}
	to := uint64(toMillis(timeout))
	w := k.words()
	s := t.conns
	b1, b2, tag := s.place(t.seed.hash(&w))
	now := t.now()
	s.lock(b1, b2)
	defer s.unlock(b1, b2)
	// The latches keep other inserters out, but workers still touch,
	// expire and release the entry; each step below that loses such a
	// race looks again.
find:
	for _, b := range [2]uint32{b1, b2} {
		v, ok := s.find(b, s.buckets[b].used.Load(), tag, &w)
		if !ok {
			continue
		}
		if expired(v.meta, now) {
			if s.release(v.slot, v.meta) {
				t.retire(v.meta, v.bind, payload(v.meta))
				t.stats.at(v.slot).expired.Add(1)
			}
			goto find // released by us or a worker, or touched since
		}
		if uint32(v.bind>>32) != dest {
			if inactive {
				return SyncStale
			}
			// ip_vs_conn_expire_now: the master now sends this flow
			// elsewhere.
			t.releaseLive(v.slot, generation(v.meta), now)
			break
		}
		if t.syncUpdate(v.slot, st, now+to) {
			t.setSync(v.slot, info)
			return SyncUpdated
		}
		// Released under us (a worker saw it expire): make a new one.
		break
	}
	slot, ok := t.makeRoom(b1, b2, now)
	if !ok {
		t.stats.at(b1 * bucketSlots).refused.Add(1)
		return SyncFull
	}
	t.hooks.Bind(dest, st.Active())
	pw := w
	if fwd == FwdMasq && t.rev != nil {
		// No client packet has filed its replies yet (ReplyPending).
		pw[4] |= replyUnfiled
	}
	s.publish(slot, tag, &pw, fwd, now, uint64(dest)<<32, st, now+to)
	t.stats.at(slot).inserted.Add(1)
	t.setSync(slot, info)
	return SyncInserted
}

// releaseLive releases the live entry in slot if it is still the
// lifetime gen names, retrying while workers change its state, and does
// its accounting. A worker may release it first; then there is nothing
// left to do.
func (t *Table) releaseLive(slot uint32, gen, now uint64) {
	e := &t.conns.entries[slot]
	for {
		m := e.meta.Load()
		if status(m) != statusLive || generation(m) != gen {
			return
		}
		bind := e.bind.Load()
		if t.conns.release(slot, m) {
			t.retire(m, bind, now)
			t.stats.at(slot).expired.Add(1)
			return
		}
	}
}

// syncUpdate moves a live entry to state st with expiry exp, reporting
// an active/inactive move to Hooks. It fails if the entry was released.
func (t *Table) syncUpdate(slot uint32, st State, exp uint64) bool {
	e := &t.conns.entries[slot]
	for {
		m := e.meta.Load()
		if status(m) != statusLive {
			return false
		}
		nm := makeMeta(generation(m), statusLive, st, exp)
		if !e.meta.CompareAndSwap(m, nm) {
			continue
		}
		if payload(nm) < payload(m) {
			t.conns.lowerDue(slot, payload(nm))
		}
		if old := stateOf(m); old.Active() != st.Active() {
			t.hooks.Transfer(uint32(e.bind.Load()>>32), st.Active())
		}
		return true
	}
}

func (t *Table) setSync(slot uint32, info SyncInfo) {
	if a := t.sync.Load(); a != nil {
		a.conns[slot].Store(info.pack())
	}
}

// SyncTemplate installs a persistence template a sync master sent: an
// existing live template for k keeps its real server and has its timer
// set to timeout from now, with timeout as its new timeout (the kernel
// sets cp->timeout and re-arms the timer); otherwise a new template for
// dest is made with that timeout. info becomes its sync word when
// EnableSync has run.
func (t *Table) SyncTemplate(k *Key, dest uint32, timeout time.Duration, info SyncInfo) (TemplateRef, SyncResult) {
	defer runtime.KeepAlive(t) // see newStore
	if timeout < time.Millisecond || timeout > MaxTimeout {
		return 0, SyncInvalid
	}
	s := t.tmpls
	if s == nil {
		return 0, SyncFull
	}
	to := uint64(toMillis(timeout))
	w := k.words()
	b1, b2, tag := s.place(t.seed.hash(&w))
	now := t.now()
	s.lock(b1, b2)
	defer s.unlock(b1, b2)
	for _, b := range [2]uint32{b1, b2} {
		v, ok := s.find(b, s.buckets[b].used.Load(), tag, &w)
		if !ok {
			continue
		}
		if !templateExpired(v.meta, v.since, now) {
			e := &s.entries[v.slot]
			e.bind.Store(v.bind&^0xffff_ffff | to)
			e.since.Store(now + to)
			if a := t.sync.Load(); a != nil {
				a.tmpls[v.slot].Store(info.pack())
			}
			return makeTemplateRef(v.slot, v.meta), SyncUpdated
		}
		s.release(v.slot, v.meta)
		break
	}
	slot, ok := t.templateRoom(b1, b2, now)
	if !ok {
		return 0, SyncFull
	}
	m := s.publish(slot, tag, &w, 0, now+to, uint64(dest)<<32|to, None, 0)
	if a := t.sync.Load(); a != nil {
		a.tmpls[slot].Store(info.pack())
	}
	return makeTemplateRef(slot, m), SyncInserted
}

// SyncRule is the count test of SyncCounter.Count, made once for a setting of
// the sync sysctls by NewSyncRule: a packet count n may make a sync due
// when n%period == due (period > 0) or n == due (period 0). It tests n
// with a multiplication instead of a division: for a 32-bit x and a
// divisor d, x is a multiple of d exactly when x*ceil(2^64/d), modulo
// 2^64, is below ceil(2^64/d) (Lemire, Kaser and Kurz, "Faster remainder
// by direct computation", 2019). Applied to x = n-due (modulo 2^32) it
// says yes at every n the kernel's test does, and also at a few n below
// due, when x wraps; those only cost the caller a full decision, which
// answers as the kernel does.
type SyncRule struct {
	mul    uint64 // ceil(2^64/period); 2^32 to test n == due alone
	due    uint32
	period uint32 // for the restart past MaxSyncPkts
}

// The zero SyncRule rules no count out: every packet is left to the full
// decision.

// NewSyncRule is the rule for sync_threshold's two numbers: the count a
// sync is due at (due) and the period (0: at that count only).
func NewSyncRule(period, due uint32) SyncRule {
	r := SyncRule{due: due, period: period, mul: 1 << 32}
	switch {
	case period > 0 && due >= period:
		// No count modulo period is due: test for a count no entry
		// reaches instead.
		r.due = MaxSyncPkts + 1
	case period > 0:
		r.mul = ^uint64(0)/uint64(period) + 1 // 0 for period 1: every x passes
	}
	return r
}

// mayBeDue reports whether count n may make a sync due under r: always
// when n%period == due (n == due for period 0), and sometimes otherwise.
func (r *SyncRule) mayBeDue(n uint32) bool {
	return uint64(n-r.due)*r.mul <= r.mul-1
}

// SyncCounter counts packets on connections' sync words under one
// SyncRule, for the sync hook's common case (Count). It holds the words'
// address and number, read once from the table instead of at every
// packet, and keeps them from being freed while it is reachable, but not
// past the table's Close: like the table, it must not be used after
// that. The zero SyncCounter counts nothing.
type SyncCounter struct {
	base unsafe.Pointer // the first connection word
	n    uint32
	rule SyncRule
	a    *syncArrays
}

// SyncCounter returns a counter of t's connection sync words under rule;
// before EnableSync it counts nothing.
func (t *Table) SyncCounter(rule SyncRule) SyncCounter {
	a := t.sync.Load()
	if a == nil || len(a.conns) == 0 {
		return SyncCounter{rule: rule}
	}
	return SyncCounter{base: unsafe.Pointer(unsafe.SliceData(a.conns)), n: uint32(len(a.conns)), rule: rule, a: a}
}

// Count is the sync hook's common case: a packet that only counts. It
// adds one to c's packet count and reports true, unless the count
// reached is one a sync may be due at under the rule (see SyncRule), or
// is past MaxSyncPkts, or c is a TCP connection (proto) in a state other
// than ESTABLISHED that is not the state last sent: then it changes
// nothing and reports false, and the caller decides in full (SyncInfo,
// SetSyncInfo). It also reports false when the counter counts nothing or
// c names no entry. The calling queue is taken to be the flow's only
// writer (see the top of this file): the count is stored with a plain
// store (plainstore.Unordered64).
func (s *SyncCounter) Count(c *Conn, proto uint8) bool {
	w := s.word(c)
	if w == nil {
		return false
	}
	raw := w.Load()
	if raw >= MaxSyncPkts<<40 || s.rule.mayBeDue(uint32(raw>>40)+1) ||
		proto == ProtoTCP && c.State != Established && State(raw>>36&0xf) != c.State {
		return false
	}
	plainstore.Unordered64(w, raw+1<<40)
	return true
}

// Info returns c's sync word, as Table.SyncInfo does; ok is false when
// the counter counts nothing or c names no entry.
func (s *SyncCounter) Info(c *Conn) (info SyncInfo, ok bool) {
	w := s.word(c)
	if w == nil {
		return SyncInfo{}, false
	}
	return unpackSync(w.Load()), true
}

// Set replaces c's sync word with info, with a plain store by the flow's
// one writer, as Count stores the count (see the top of this file): the
// worker's full decision (Info, then Set) takes no lock either. It does
// nothing when the counter counts nothing or c names no entry.
func (s *SyncCounter) Set(c *Conn, info SyncInfo) {
	if w := s.word(c); w != nil {
		plainstore.Unordered64(w, info.pack())
	}
}

// word is c's sync word, or nil when the counter counts nothing or c
// names no entry.
func (s *SyncCounter) word(c *Conn) *atomic.Uint64 {
	slot := uint32(c.ref>>32) - 1
	if slot >= s.n {
		return nil
	}
	return (*atomic.Uint64)(unsafe.Add(s.base, uintptr(slot)*8))
}
