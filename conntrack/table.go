package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

const (
	sizeofEntry  = unsafe.Sizeof(entry{})
	sizeofBucket = unsafe.Sizeof(bucket{})
)

// EntrySize returns the bytes one entry occupies in the slot array. The
// whole table also spends one 64-byte bucket header per 14 slots and sizes
// its slots for 80% load at capacity: Table.Bytes reports the total.
func EntrySize() uintptr { return sizeofEntry }

// Limits New enforces. Connection slots are addressed by 32-bit indexes,
// templates by the low 24 bits of a TemplateRef.
const (
	MaxCapacity  = 1 << 30
	MaxTemplates = 1 << 23
)

// Config sizes a Table. Everything is allocated by New; the table never
// grows.
type Config struct {
	// Capacity is the most connections the table holds at once.
	Capacity int
	// Templates is the most persistence templates it holds; 0 disables
	// persistence (InsertTemplate then reports Full).
	Templates int
	// Reverse is how many VS/NAT reply keys the reverse index holds
	// (reverse.go); 0: no index, and InsertReply always fails.
	Reverse int
	// Timeouts per state; the zero value means DefaultTimeouts.
	Timeouts Timeouts
	// Clock is read on every operation; nil means SystemClock.
	Clock Clock
	// Hooks receives per-real-server accounting; nil discards it.
	Hooks Hooks
	// HashKey, when set, keys the table's hash instead of a random key
	// from crypto/rand. Which entry a full bucket evicts follows the hash,
	// so a simulator that must give the same output for the same input
	// sets it; a daemon leaves it nil, so that nobody outside can predict
	// where a flow lands.
	HashKey *[32]byte
}

// Table is the connection table shared by every worker. Lookup, Touch,
// Insert, the template calls, Sweep, Range and Stats are all safe for
// concurrent use; none of them allocates.
//
// Its words come in groups by who writes them, each group at least a
// cache line away from the next (layout_test.go checks it), so that a
// write never takes from another core a line its packets read: first the
// words every packet reads, which only New, Close and the control plane
// write; then the sweep cursors, which the housekeeping goroutine moves
// every tick; then the counters, striped; then the defence, whose
// packet-path words are apart from its mutex-guarded state and from the
// counter every new connection decrements under drop_packet.
type Table struct {
	conns    *store
	tmpls    *store    // nil when Config.Templates is 0
	rev      *store    // the NAT reverse index; nil when Config.Reverse is 0
	seq      []seqSlot // SYN proxy sequence state by slot (seqadj.go); nil without rev
	seed     seed
	clock    Clock
	base     time.Duration
	hooks    Hooks
	timeouts timeoutTable
	sys      atomic.Uint32              // Sysctls, packed
	sync     atomic.Pointer[syncArrays] // nil until EnableSync (sync.go)
	closed   atomic.Bool

	_      lineGap
	rsweep atomic.Uint64 // next reverse index slot the sweep inspects
	sweep  atomic.Uint64 // next slot Sweep inspects
	tsweep atomic.Uint64 // next template slot SweepTemplates inspects

	_     lineGap
	stats stats
	def   defense // drop_entry, drop_packet, secure_tcp: see defense.go
}

// lineGap is a cache line of padding: fields on either side of it never
// share a line, wherever the struct that holds them lands.
type lineGap [64]byte

// CheckConfig reports what New would refuse in cfg, without allocating.
// Errors name the field, the value and the rule it broke.
func CheckConfig(cfg Config) error {
	if cfg.Capacity < 1 || cfg.Capacity > MaxCapacity {
		return fmt.Errorf("conntrack config: capacity = %d: must be between 1 and %d", cfg.Capacity, MaxCapacity)
	}
	if cfg.Templates < 0 || cfg.Templates > MaxTemplates {
		return fmt.Errorf("conntrack config: templates = %d: must be between 0 and %d", cfg.Templates, MaxTemplates)
	}
	if cfg.Reverse < 0 || cfg.Reverse > MaxCapacity {
		return fmt.Errorf("conntrack config: reverse = %d: must be between 0 and %d", cfg.Reverse, MaxCapacity)
	}
	// An allocation the machine cannot hold would kill the process instead
	// of failing, so the size is checked against the RAM first.
	if need, ram := storeBytes(cfg.Capacity, true)+storeBytes(cfg.Templates, false)+storeBytes(cfg.Reverse, false), physicalMemory(); ram > 0 && need > ram {
		return fmt.Errorf("conntrack config: capacity = %d, templates = %d, reverse = %d: need %d bytes, more than the machine's %d", cfg.Capacity, cfg.Templates, cfg.Reverse, need, ram)
	}
	if cfg.Timeouts != (Timeouts{}) {
		if err := cfg.Timeouts.validate(); err != nil {
			return fmt.Errorf("conntrack config: %w", err)
		}
	}
	return nil
}

// New allocates a table. Validation errors name the field, the value and
// the rule it broke (see CheckConfig).
func New(cfg Config) (*Table, error) {
	if err := CheckConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DefaultTimeouts()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Hooks == nil {
		cfg.Hooks = noHooks{}
	}
	conns, err := newStore(cfg.Capacity, true)
	if err != nil {
		return nil, fmt.Errorf("conntrack config: capacity = %d: %w", cfg.Capacity, err)
	}
	t := &Table{
		conns: conns,
		clock: cfg.Clock,
		base:  cfg.Clock.Now(),
		hooks: cfg.Hooks,
	}
	if cfg.Templates > 0 {
		if t.tmpls, err = newStore(cfg.Templates, false); err != nil {
			conns.close()
			return nil, fmt.Errorf("conntrack config: templates = %d: %w", cfg.Templates, err)
		}
	}
	if cfg.Reverse > 0 {
		if t.rev, err = newStore(cfg.Reverse, false); err != nil {
			t.Close()
			return nil, fmt.Errorf("conntrack config: reverse = %d: %w", cfg.Reverse, err)
		}
		t.seq = make([]seqSlot, int(conns.slots()))
	}
	var b [32]byte
	if cfg.HashKey != nil {
		b = *cfg.HashKey
	} else if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("conntrack: hash seed: %w", err)
	}
	for i := range t.seed {
		t.seed[i] = binary.LittleEndian.Uint64(b[i*8:]) | 1
	}
	t.timeouts.load(cfg.Timeouts)
	t.sys.Store(DefaultSysctls().pack())
	t.def.lv.d, t.def.free = DefaultDefense(), uint64(cfg.Capacity)
	return t, nil
}

// now is the table's time in milliseconds since New. A clock set before
// the table's epoch reads as 0 rather than wrapping.
//
// The two clocks of this package are read without a call through the
// interface: Touch reads the clock on every packet.
func (t *Table) now() uint64 {
	var d time.Duration
	switch c := t.clock.(type) {
	case *coarseClock:
		d = time.Duration(c.now.Load())
	case *ManualClock:
		d = time.Duration(c.now.Load())
	default:
		d = c.Now()
	}
	d -= t.base
	if d < 0 {
		return 0
	}
	return uint64(d / time.Millisecond)
}

// Close gives the table's memory back at once instead of when the
// collector finds the table unreachable. Nothing else may run on the table
// during or after Close; a call made afterwards panics. Close is
// idempotent.
func (t *Table) Close() {
	if !t.closed.CompareAndSwap(false, true) {
		return
	}
	t.closeSync()
	t.conns.close()
	if t.tmpls != nil {
		t.tmpls.close()
	}
	if t.rev != nil {
		t.rev.close()
	}
}

// Bytes returns the memory the table allocated up front.
func (t *Table) Bytes() uintptr {
	n := t.conns.bytes()
	if t.tmpls != nil {
		n += t.tmpls.bytes()
	}
	if t.rev != nil {
		n += t.rev.bytes()
	}
	return n
}

// Conn is a caller's copy of one connection: where its packets go and the
// state they last left it in. ref names the entry's slot and lifetime so
// Touch can find it again without hashing and can tell when it is gone;
// it holds slot+1 so that the zero Conn names no entry.
type Conn struct {
	Dest  uint32
	Fwd   uint8
	State State
	// unfiled: a synced VS/NAT connection whose replies are not in the
	// reverse index yet (ReplyPending).
	unfiled bool
	tmpl    TemplateRef // the template that controls it, 0 if none
	ref     uint64
}

// Controlled reports whether a persistence template controls c (IPVS's
// cp->control).
func (c *Conn) Controlled() bool { return c.tmpl != 0 }

func (v *view) conn() Conn {
	return Conn{
		Dest:    uint32(v.bind >> 32),
		Fwd:     uint8(v.ports >> fwdShift),
		State:   stateOf(v.meta),
		unfiled: v.ports&replyUnfiled != 0,
		tmpl:    TemplateRef(v.bind),
		ref:     uint64(v.slot+1)<<32 | generation(v.meta),
	}
}

// connTo is conn writing each field straight into *c, for the batched
// lookup: a Conn built in a temporary and copied is written in pieces and
// read back in 16-byte moves that straddle them, which the store buffer
// cannot forward.
func (v *view) connTo(c *Conn) {
	c.Dest = uint32(v.bind >> 32)
	c.Fwd = uint8(v.ports >> fwdShift)
	c.State = stateOf(v.meta)
	c.unfiled = v.ports&replyUnfiled != 0
	c.tmpl = TemplateRef(v.bind)
	c.ref = uint64(v.slot+1)<<32 | generation(v.meta)
}

// Result is what Touch did with a packet.
type Result uint8

const (
	// Hit: the packet was applied; forward it to Conn.Dest.
	Hit Result = iota
	// Gone: the entry expired or was evicted since Lookup; treat the
	// packet as a miss.
	Gone
	// Reopen: a SYN met a connection that IPVS's is_new_conn_expected
	// lets go (see Sysctls.ConnReuseMode). The entry was released at once,
	// so the key is free, but its accounting is not done: the caller
	// schedules the packet as a new connection and then calls Retire, so
	// that the scheduler and the threshold check still count the old
	// connection, as the kernel's ip_vs_conn_expire_now leaves the unbind
	// to a timer that runs after the packet.
	Reopen
)

func (r Result) String() string {
	switch r {
	case Hit:
		return "hit"
	case Gone:
		return "gone"
	case Reopen:
		return "reopen"
	}
	return "result(" + fmt.Sprint(uint8(r)) + ")"
}

// InsertResult is what Insert or InsertTemplate did.
type InsertResult uint8

const (
	// Inserted: a new entry exists now.
	Inserted InsertResult = iota
	// Exists: the key was already there (another queue inserted it
	// first); the returned value is that entry and the caller uses it.
	Exists
	// Full: no room even after evicting; the packet is dropped and
	// counted in Stats.Refused.
	Full
	// Invalid: an argument broke a documented rule (a template timeout
	// outside 1ms..MaxTimeout); nothing changed.
	Invalid
)

func (r InsertResult) String() string {
	switch r {
	case Inserted:
		return "inserted"
	case Exists:
		return "exists"
	case Full:
		return "full"
	case Invalid:
		return "invalid"
	}
	return "insertresult(" + fmt.Sprint(uint8(r)) + ")"
}

func expired(m, now uint64) bool { return now >= payload(m) }

// Lookup finds the connection for k. It takes no lock, never returns an
// expired entry and does not allocate.
func (t *Table) Lookup(k *Key) (Conn, bool) {
	w := k.words()
	s := t.conns
	b1, b2, tag := s.place(t.seed.hash(&w))
	v, ok := s.lookup(b1, b2, tag, &w)
	if !ok || expired(v.meta, t.now()) {
		runtime.KeepAlive(t) // see newStore
		return Conn{}, false
	}
	runtime.KeepAlive(t) // see newStore
	return v.conn(), true
}

// Touch applies one packet of k with event ev to the connection c that
// Lookup or Insert returned: it moves the state, refreshes the expiry and
// reports active/inactive moves to Hooks, all with one compare-and-swap.
// c.State is updated. When several queues touch one flow, each packet is
// applied exactly once.
func (t *Table) Touch(c *Conn, k *Key, ev Event) Result {
	dir := DirInputOnly
	if c.Fwd == FwdMasq {
		dir = DirInput
	}
	return t.touch(c, k.Proto, ev, dir)
}

// touch is Touch for a packet travelling in direction dir. Only client
// packets (not DirOutput) may reopen a connection.
func (t *Table) touch(c *Conn, proto uint8, ev Event, dir Dir) Result {
	slot := uint32(c.ref>>32) - 1
	if slot >= t.conns.slots() {
		runtime.KeepAlive(t) // see newStore
		return Gone
	}
	e := t.conns.entry(slot)
	gen := c.ref & genMask
	now := t.now()
	for {
		m := e.meta.Load()
		if status(m) != statusLive || generation(m) != gen {
			runtime.KeepAlive(t) // see newStore
			return Gone
		}
		bind := e.bind.Load()
		if expired(m, now) {
			if t.conns.release(slot, m) {
				t.retire(m, bind, payload(m))
				t.stats.at(slot).expired.Add(1)
				runtime.KeepAlive(t) // see newStore
				return Gone
			}
			continue
		}
		s := stateOf(m)
		ns := s
		if proto == ProtoTCP && s != UDP {
			if ev == EvSyn && dir != DirOutput && t.newConnExpected(s, TemplateRef(bind) != 0) {
				if t.conns.release(slot, m) {
					t.stats.at(slot).reopened.Add(1)
					c.State, c.tmpl = s, TemplateRef(bind)
					runtime.KeepAlive(t) // see newStore
					return Reopen
				}
				continue
			}
			if s != Established || ev != EvAck {
				// An ACK leaves ESTABLISHED as it is in every direction
				// of both state tables (TestEstablishedAckStays), so the
				// commonest packet skips the table.
				ns = t.nextState(s, ev, dir)
			}
		}
		to := t.timeouts.of(ns)
		exp := now + to
		if ns == s && exp <= payload(m) && payload(m)-exp <= slack(to) {
			// The stored expiry is within the slack of the exact one:
			// nothing to write, so a busy flow's line stays shared.
			c.State = ns
			countPacket(e)       // drop_entry's in_pkts; stops writing past 8
			runtime.KeepAlive(t) // see newStore
			return Hit
		}
		nm := slackedMeta(gen, ns, exp+slack(to))
		if !e.meta.CompareAndSwap(m, nm) {
			continue
		}
		if payload(nm) < payload(m) {
			// The expiry moved earlier (a shorter state's timeout, or
			// ipvsadm --set lowered one): the expiry index must not
			// promise a later second.
			t.conns.lowerDue(slot, payload(nm))
		}
		if s.Active() != ns.Active() {
			t.hooks.Transfer(uint32(bind>>32), ns.Active())
		}
		c.State = ns
		countPacket(e)       // drop_entry's in_pkts; stops writing past 8
		runtime.KeepAlive(t) // see newStore
		return Hit
	}
}

// slackShift sets a connection's expiry slack: timeout/64.
const slackShift = 6

// slack is how late a connection with timeout to (ms) may expire: a
// packet of a connection whose state does not change writes nothing
// while the stored expiry is no earlier than the exact one (the packet's
// time plus the timeout) and no more than slack(to) later; otherwise it
// stores the exact expiry plus slack(to), so that a busy flow's entry is
// written once per slack(to), not every millisecond. The entry never
// expires early and at most slack(to) late.
//
// IPVS re-arms a connection's timer on every packet, and the kernel's
// timer wheel (kernel/time/timer.c) lets a timer fire late, never early:
// calc_wheel_index files a timer due in d jiffies at level n, the level
// whose range [63*8^(n-1), 63*8^n) holds d, and calc_index rounds its
// expiry up to that level's granularity, 8^n jiffies. Over a level's
// range that granularity is between 1/63 and 8/63 of d, so d/64 is
// below it at every level (and 0 at level 0, below 63 jiffies): the
// table is never later than the kernel's own wheel may be for the same
// timeout.
func slack(to uint64) uint64 { return to >> slackShift }

// exactExpiry is the expiry a listing shows for a connection's meta m:
// the stored one less the slack of its state's timeout, which is the
// kernel's expiry had the last packet come at the last write. An entry
// that sync wrote (not slacked) stores its exact expiry.
func (t *Table) exactExpiry(m uint64) uint64 {
	if !slacked(m) {
		return payload(m)
	}
	return payload(m) - min(payload(m), slack(t.timeouts.of(stateOf(m))))
}

// retire does the accounting for a connection whose release this
// goroutine won: Unbind and giving back its template. at is when the
// connection went, in table milliseconds: its expiry when it expired
// (however late it is swept), the present otherwise.
func (t *Table) retire(m, bind, at uint64) {
	t.hooks.Unbind(uint32(bind>>32), stateOf(m).Active())
	if ref := TemplateRef(bind); ref != 0 {
		t.putTemplate(ref, at)
	}
}

// ExpireNow releases c's entry at once if it is still the lifetime c
// names, like IPVS's ip_vs_conn_expire_now, and reports whether this call
// released it. As with Reopen the key is free at once and the accounting
// (Unbind, the template's control count) waits for Retire, which the
// caller makes after the packet that caused it has been scheduled. c.State
// becomes the state the entry was released in.
func (t *Table) ExpireNow(c *Conn) bool {
	defer runtime.KeepAlive(t) // see newStore
	slot := uint32(c.ref>>32) - 1
	if slot >= t.conns.slots() {
		return false
	}
	e := t.conns.entry(slot)
	for {
		m := e.meta.Load()
		if status(m) != statusLive || generation(m) != c.ref&genMask {
			return false
		}
		bind := e.bind.Load()
		if t.conns.release(slot, m) {
			t.stats.at(slot).expired.Add(1)
			c.State, c.Dest, c.tmpl = stateOf(m), uint32(bind>>32), TemplateRef(bind)
			return true
		}
	}
}

// Retire does the accounting of a connection that Touch answered with
// Reopen or ExpireNow released: Unbind from its real server in the class
// of the state it left in, and one control fewer on its template. Each
// such connection must be retired exactly once.
func (t *Table) Retire(c *Conn) {
	defer runtime.KeepAlive(t) // see newStore
	t.hooks.Unbind(c.Dest, c.State.Active())
	if c.tmpl != 0 {
		t.putTemplate(c.tmpl, t.now())
	}
}

// initialState is the state a new connection starts in: the input-only
// table applied to NONE for TCP, UDP for everything else.
func initialState(proto uint8, ev Event) State {
	if proto == ProtoTCP {
		return Next(None, ev)
	}
	return UDP
}

// insertAttempts bounds the eviction loop: each round frees one entry,
// and a round fails only when another inserter took the room first.
const insertAttempts = 4

// Insert adds the connection k -> dest, with forwarding method fwd, in the
// state its first packet (event ev) puts it. If tmpl is not 0 the
// connection holds that persistence template alive until it goes away; a
// template that vanished meanwhile is not attached. When the table is
// full Insert evicts, in this order, an expired entry and then the oldest
// SYN_RECV or inactive one in the fuller of the key's two buckets, else
// the same in the other (or, when only the capacity bound is hit, among
// a few buckets further on); if there is none it refuses with Full and
// counts the refusal.
func (t *Table) Insert(k *Key, dest uint32, fwd uint8, tmpl TemplateRef, ev Event) (Conn, InsertResult) {
	w := k.words()
	s := t.conns
	b1, b2, tag := s.place(t.seed.hash(&w))
	now := t.now()
	s.lock(b1, b2)
	for _, b := range [2]uint32{b1, b2} {
		v, ok := s.find(b, s.bucket(b).used.Load(), tag, &w)
		if !ok {
			continue
		}
		if !expired(v.meta, now) {
			s.unlock(b1, b2)
			runtime.KeepAlive(t) // see newStore
			return v.conn(), Exists
		}
		if s.release(v.slot, v.meta) {
			t.retire(v.meta, v.bind, payload(v.meta))
			t.stats.at(v.slot).expired.Add(1)
		}
		// Keys are unique while the latches are held, so there is no
		// second copy to find.
		break
	}
	slot, ok := t.makeRoom(b1, b2, now)
	if !ok {
		s.unlock(b1, b2)
		t.stats.at(b1 * bucketSlots).refused.Add(1)
		runtime.KeepAlive(t) // see newStore
		return Conn{}, Full
	}
	st := initialState(k.Proto, ev)
	// Under secure_tcp a DR or TUN SYN opens in SYNACK; the NONE column
	// of tcp_states_dos's INPUT half, which a VS/NAT connection starts
	// from, equals tcp_states'.
	if k.Proto == ProtoTCP && fwd != FwdMasq && t.secureTCP() {
		st = NextSecure(None, ev)
	}
	ref := uint32(0)
	if tmpl != 0 && t.getTemplate(tmpl, now) {
		ref = uint32(tmpl)
	}
	bind := uint64(dest)<<32 | uint64(ref)
	// Bind precedes publication so no Transfer or Unbind of this entry
	// can reach the hooks before it.
	t.hooks.Bind(dest, st.Active())
	to := t.timeouts.of(st)
	pw := w
	if !t.def.count.Load() {
		pw[4] |= inPktsMax // nobody reads the count (see countPacket)
	}
	m := s.publish(slot, tag, &pw, fwd, now, bind, st, (now+to+slack(to))|slackedBit)
	if a := t.sync.Load(); a != nil {
		resetSync(a.conns, slot, now)
	}
	s.unlock(b1, b2)
	t.stats.at(slot).inserted.Add(1)
	runtime.KeepAlive(t) // see newStore
	// What view.conn would give for the entry just published, built from
	// the values at hand rather than a view.
	return Conn{Dest: dest, Fwd: fwd, State: st, tmpl: TemplateRef(ref), ref: uint64(slot+1)<<32 | generation(m)}, Inserted
}

// makeRoom finds a free slot in b1 or b2 and reserves a unit of capacity,
// evicting as the eviction order allows. The caller holds both latches.
//
// An eviction hands the victim's unit of capacity straight to this insert
// instead of giving it back to the table and reserving it again: another
// queue inserting at capacity could take it in between, and the insert
// would be refused although it had made room. The slot is then free for
// certain: either the victim was in b1 or b2, and the insert takes the
// victim's own slot, or b1 or b2 already had a free slot; with both
// latches held nobody else claims one there. A victim in b1 or b2 keeps
// its used bit through the hand-over (evict's inPlace), which saves the
// two atomic read-modify-writes of clearing and setting it again, and its
// line is already in the cache from the eviction.
func (t *Table) makeRoom(b1, b2 uint32, now uint64) (uint32, bool) {
	s := t.conns
	for range insertAttempts {
		slot, free := s.freeSlot(b1, b2)
		if free && s.reserve() {
			return slot, true
		}
		first, second := s.evictionOrder(b1, b2)
		s.prefetchUsed(first)
		v, ok := t.victimIn(first, now, victim{}, false)
		if !ok || !expired(v.meta, now) {
			// An expired entry of the other bucket still goes first;
			// the expiry index shows where one may be without reading
			// the bucket's entries.
			if e, found := t.expiredIn(second, now); found {
				v, ok = e, true
			} else if !ok {
				v, ok = t.victimIn(second, now, v, ok)
			}
		}
		if !ok && free {
			// The buckets have room but the table is at capacity: the
			// victim may be anywhere, so look a bounded way further.
			start := uint32(s.cursor.Add(evictScan) % uint64(s.nb))
			for i := range uint32(evictScan) {
				v, ok = t.victimIn((start+i)%s.nb, now, v, ok)
			}
		}
		if !ok {
			return 0, false
		}
		vb := v.slot / bucketSlots
		inPlace := vb == b1 || vb == b2
		if !t.evict(v, now, inPlace) {
			continue // touched or taken since victimIn chose it
		}
		if afterEvict != nil {
			afterEvict()
		}
		if inPlace {
			return v.slot, true
		}
		if slot, free := s.freeSlot(b1, b2); free {
			return slot, true
		}
		s.live.Add(-1) // unreachable (see above); the unit goes back
	}
	return 0, false
}

// afterEvict, when set, runs after makeRoom's eviction and before it
// takes a slot, so that a test can race another inserter into that
// moment.
var afterEvict func()

// evictionOrder returns a key's two buckets in the order an eviction
// searches them: the fuller first (b1 when they are level), so that an
// insert into a full table makes its room where the load is higher, and
// reads one bucket's entries, not two, whenever that bucket has a victim.
func (s *store) evictionOrder(b1, b2 uint32) (first, second uint32) {
	if bits.OnesCount32(s.bucket(b2).used.Load()&fullMask) > bits.OnesCount32(s.bucket(b1).used.Load()&fullMask) {
		return b2, b1
	}
	return b1, b2
}

// prefetchUsed starts loading the entries of b's used slots, which
// victimIn is about to read one after another: issued together, their
// misses overlap instead of waiting on each other.
func (s *store) prefetchUsed(b uint32) {
	var addrs [bucketSlots]uintptr
	a := 0
	base := b * bucketSlots
	for used := s.bucket(b).used.Load() & fullMask; used != 0; used &= used - 1 {
		addrs[a] = uintptr(unsafe.Pointer(s.entry(base + uint32(bits.TrailingZeros32(used)))))
		a++
	}
	prefetch(addrs[:a])
}

// evictScan is how many extra buckets one capacity eviction inspects.
const evictScan = 8

// victim is an eviction candidate: its slot, the meta word it was chosen
// by and its age. Eviction is a CAS from that meta word, so a candidate
// touched since it was chosen is left alone.
type victim struct {
	slot  uint32
	meta  uint64
	since uint64
}

// victimIn returns the better eviction candidate between best and the
// entries of bucket b: any expired entry beats a live one, and among live
// evictable entries the oldest wins. It reads two words per entry.
func (t *Table) victimIn(b uint32, now uint64, best victim, have bool) (victim, bool) {
	s := t.conns
	if have && expired(best.meta, now) {
		return best, true
	}
	used := s.bucket(b).used.Load() & fullMask
	base := b * bucketSlots
	for used != 0 {
		slot := base + uint32(bits.TrailingZeros32(used))
		used &= used - 1
		e := s.entry(slot)
		m := e.meta.Load()
		if status(m) != statusLive {
			continue
		}
		if expired(m, now) {
			return victim{slot: slot, meta: m}, true
		}
		if !stateOf(m).evictable() {
			continue
		}
		since := e.since.Load()
		if e.meta.Load()&identityMask != m&identityMask {
			continue
		}
		if !have || since < best.since {
			best, have = victim{slot: slot, meta: m, since: since}, true
		}
	}
	return best, have
}

// expiredIn returns an expired entry of bucket b, if it has one. It
// reads the entry of a slot only when the slot's due (a lower bound of
// the expiry's second, expiry.go) has come, and no due at all when the
// bound of the bucket's group has not.
func (t *Table) expiredIn(b uint32, now uint64) (victim, bool) {
	s := t.conns
	sec := dueSec(now)
	base := b * bucketSlots
	if s.gdue[base/dueGroupSlots].Load() > sec {
		return victim{}, false
	}
	for used := s.bucket(b).used.Load() & fullMask; used != 0; used &= used - 1 {
		slot := base + uint32(bits.TrailingZeros32(used))
		if s.due[slot].Load() > sec {
			continue
		}
		if m := s.entry(slot).meta.Load(); status(m) == statusLive && expired(m, now) {
			return victim{slot: slot, meta: m}, true
		}
	}
	return victim{}, false
}

// evict releases the victim if it is still what victimIn saw, and reports
// whether it did. The victim's unit of capacity is not given back: the
// caller inserts in its place. With inPlace (the caller holds the
// victim's bucket latch and publishes in its slot next) the slot stays
// claimed (store.releaseClaimed). The bind word read before the CAS belongs to
// that lifetime if the CAS succeeds.
func (t *Table) evict(v victim, now uint64, inPlace bool) bool {
	bind := t.conns.entry(v.slot).bind.Load()
	if inPlace {
		if !t.conns.releaseClaimed(v.slot, v.meta) {
			return false
		}
	} else if !t.conns.releaseKeep(v.slot, v.meta) {
		return false
	}
	at := now
	if expired(v.meta, now) {
		at = payload(v.meta)
	}
	t.retire(v.meta, bind, at)
	if expired(v.meta, now) {
		t.stats.at(v.slot).expired.Add(1)
	} else {
		t.stats.at(v.slot).evicted.Add(1)
	}
	return true
}
