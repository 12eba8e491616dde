package conntrack

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// Defense holds IPVS's three defence strategies against a flood of new
// connections (net.ipv4.vs.drop_entry, drop_packet and secure_tcp) and the
// two values that tune them (amemthresh, am_droprate). IPVS measures
// pressure as the host's free memory against amemthresh pages; a table
// that is allocated once cannot run the host out of memory, so here the
// pressure is the connection table's free entries against AmemThresh
// entries.
//
// Each strategy takes IPVS's values: 0 off; 1 automatic, on while free
// entries are below AmemThresh (the value then reads 2); 2 automatic and
// on now (it reads 1 again once the pressure is gone); 3 always on. The
// values move between 1 and 2 exactly as update_defense_level moves the
// sysctls, so a reader sees whether an automatic defence is on.
type Defense struct {
	// DropEntry is drop_entry: while on, every DefenseTick drops entries
	// from a random 1/32 of the table: half-open TCP entries (SYN_RECV,
	// SYNACK) always, and established TCP entries and other protocols'
	// entries idle for 60 s with at most 8 packets, at a rate that falls
	// with their packet count (todrop_entry).
	DropEntry int
	// DropPacket is drop_packet: while on, one new connection in
	// DropRate is dropped before it is scheduled (ip_vs_todrop). The
	// automatic modes set the rate to AmemThresh/(AmemThresh-free), so
	// the fuller the table, the more are dropped; mode 3 uses AmDropRate.
	DropPacket int
	// SecureTCP is secure_tcp: while on, TCP entries follow IPVS's
	// tcp_states_dos table instead of tcp_states, in all three halves.
	// For the input-only traffic a DR or TUN director sees, a SYN opens
	// an entry in SYNACK rather than SYN_RECV (and a SYN on a closing
	// entry moves it there), which drop_entry and the eviction order both
	// treat as half-open. A VS/NAT connection opens in SYN_RECV, the
	// server's SYN-ACK moves it to SYNACK, and only the server's ACK
	// establishes it: a client's ACK no longer does.
	SecureTCP int
	// AmemThresh is the free-entry threshold under which the automatic
	// modes turn on (IPVS's amemthresh, there in pages; default 1024).
	AmemThresh int
	// AmDropRate is drop_packet's rate in mode 3 (am_droprate, default 10).
	AmDropRate int
}

// Kernel defaults of amemthresh and am_droprate.
const (
	DefaultAmemThresh = 1024
	DefaultAmDropRate = 10
)

// DefaultDefense returns the kernel's defaults: every strategy off,
// amemthresh 1024, am_droprate 10.
func DefaultDefense() Defense {
	return Defense{AmemThresh: DefaultAmemThresh, AmDropRate: DefaultAmDropRate}
}

// Validate reports a value outside what the kernel accepts, naming the
// sysctl and the rule.
func (d Defense) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"drop_entry", d.DropEntry}, {"drop_packet", d.DropPacket}, {"secure_tcp", d.SecureTCP}} {
		if f.v < 0 || f.v > 3 {
			return fmt.Errorf("%s = %d: must be 0 to 3 (0 off, 1 or 2 automatic when free entries fall below amemthresh, 3 always)", f.name, f.v)
		}
	}
	if d.AmemThresh < 0 || d.AmemThresh > MaxCapacity {
		return fmt.Errorf("amemthresh = %d: must be 0 to %d free entries", d.AmemThresh, MaxCapacity)
	}
	if d.AmDropRate < 0 || d.AmDropRate > 1<<20 {
		return fmt.Errorf("am_droprate = %d: must be 0 to %d (drop one new connection in this many; 0 drops none)", d.AmDropRate, 1<<20)
	}
	return nil
}

// DefenseState is the defence as it stands: the three values as the
// kernel would show them now (1 or 2 in the automatic modes), what is on,
// and the table fill that decided it.
type DefenseState struct {
	Defense
	DropEntryOn bool   // drop_entry drops entries at each tick
	DropRate    int    // drop_packet drops one new connection in DropRate; 0: none
	SecureTCPOn bool   // the tcp_states_dos table is in force
	Free        uint64 // free entries at the last update
	Dropped     uint64 // entries drop_entry has dropped
}

// levels is update_defense_level's state: the sysctl values as they
// evolve, the secure_tcp value the last update saw, and what is on.
type levels struct {
	d         Defense
	oldSecure int
	dropEntry bool
	dropRate  int
	secure    bool
	// reset: the update also restarted drop_packet's countdown, as the
	// automatic modes do at every update under pressure.
	reset bool
}

// autoLevel is one strategy's step in update_defense_level: a value and
// whether the table is short of free entries give the new value and
// whether the strategy acts. Values 1 and 2 are the two faces of the
// automatic mode.
func autoLevel(v int, nomem bool) (int, bool) {
	switch v {
	case 1, 2:
		if nomem {
			return 2, true
		}
		return 1, false
	case 3:
		return 3, true
	}
	return v, false
}

// update is update_defense_level with free entries for available memory.
func (l *levels) update(free int) {
	thresh := max(l.d.AmemThresh, 0)
	nomem := free < thresh

	l.d.DropEntry, l.dropEntry = autoLevel(l.d.DropEntry, nomem)

	var on bool
	l.d.DropPacket, on = autoLevel(l.d.DropPacket, nomem)
	l.reset = false
	switch {
	case !on:
		l.dropRate = 0
	case l.d.DropPacket == 3:
		l.dropRate = l.d.AmDropRate
	default:
		l.dropRate = thresh / (thresh - free)
		l.reset = true
	}

	// secure_tcp switches the state table only on a crossing of the
	// old value over 2, as the kernel's to_change does: the table is
	// the dos one exactly when the new value is above 1.
	old := l.oldSecure
	l.d.SecureTCP, _ = autoLevel(l.d.SecureTCP, nomem)
	if (old >= 2) != (l.d.SecureTCP >= 2) {
		l.secure = l.d.SecureTCP > 1
	}
	l.oldSecure = l.d.SecureTCP
}

// defense is a Table's defence: the levels behind a mutex (updates come
// from the housekeeping goroutine and from SetDefense), and what the
// packet path reads as atomics.
//
// Three groups, a line apart: the state under mu, which every tick
// writes; the words the packet path reads, which change only when a
// level does; and drop_packet's counter, which every new connection
// decrements while drop_packet is on.
type defense struct {
	mu      sync.Mutex
	lv      levels
	free    uint64
	dropped atomic.Uint64
	// todrop counts down to the next dropped entry for each packet count
	// 0..8, as todrop_entry's todrop_counter.
	todrop [9]int
	rng    *rand.Rand

	_      lineGap
	rate   atomic.Int64 // drop_packet's rate, 0 for off
	secure atomic.Bool  // tcp_states_dos in force
	// count: drop_entry is not 0, so new connections count their
	// packets (countPacket).
	count atomic.Bool

	_       lineGap
	counter atomic.Int64 // ip_vs_todrop's drop_counter
	_       lineGap
}

// SetDefense sets the defence values, as writing the sysctls does, and
// runs an update at once (proc_do_defense_mode calls
// update_defense_level). An invalid value changes nothing.
func (t *Table) SetDefense(d Defense) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	df := &t.def
	df.mu.Lock()
	defer df.mu.Unlock()
	df.lv.d = d
	t.updateLocked()
	return nil
}

// Defense returns the defence's state as of its last update.
func (t *Table) Defense() DefenseState {
	df := &t.def
	df.mu.Lock()
	defer df.mu.Unlock()
	return DefenseState{Defense: df.lv.d, DropEntryOn: df.lv.dropEntry, DropRate: df.lv.dropRate,
		SecureTCPOn: df.lv.secure, Free: df.free, Dropped: df.dropped.Load()}
}

func (t *Table) updateLocked() {
	df := &t.def
	free := t.conns.capacity - t.conns.live.Load()
	free = max(free, 0)
	df.free = uint64(free)
	df.lv.update(int(min(free, MaxCapacity)))
	// Stored only when they change: a store takes the line from every
	// core that reads it, and the tick runs while the workers do.
	if r := int64(df.lv.dropRate); df.rate.Load() != r {
		df.rate.Store(r)
	}
	if df.lv.reset {
		df.counter.Store(int64(df.lv.dropRate))
	}
	if df.secure.Load() != df.lv.secure {
		df.secure.Store(df.lv.secure)
	}
	if c := df.lv.d.DropEntry != 0; df.count.Load() != c {
		df.count.Store(c)
	}
}

// DefenseTick is IPVS's defense_work_handler, which the kernel runs once
// a second: it updates the levels from the table's fill and, while
// drop_entry is on, drops entries from a random 1/32 of the table. It
// returns how many entries it dropped.
func (t *Table) DefenseTick() int {
	df := &t.def
	df.mu.Lock()
	defer df.mu.Unlock()
	t.updateLocked()
	if !df.lv.dropEntry {
		return 0
	}
	return t.randomDropEntry()
}

// ToDropPacket is ip_vs_todrop: while drop_packet is on, it answers true
// for one call in the drop rate, and the caller drops that new
// connection's packet. It allocates nothing; with the defence off it is
// one atomic load.
func (t *Table) ToDropPacket() bool {
	df := &t.def
	rate := df.rate.Load()
	if rate == 0 {
		return false
	}
	if df.counter.Add(-1) > 0 {
		return false
	}
	df.counter.Store(rate)
	return true
}

// secureTCP reports whether tcp_states_dos is in force.
func (t *Table) secureTCP() bool { return t.def.secure.Load() }

// randomDropEntry is ip_vs_random_dropentry: it inspects a random 1/32 of
// the buckets and drops half-open TCP entries, and established TCP and
// non-TCP entries that todropEntry picks. A dropped connection's
// persistence template is deleted too, as the kernel deletes cp->control.
// The caller holds df.mu.
func (t *Table) randomDropEntry() int {
	defer runtime.KeepAlive(t) // see newStore
	df := &t.def
	if df.rng == nil {
		df.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	s := t.conns
	n := max(s.nb>>5, 1)
	now := t.now()
	dropped := 0
	for range n {
		b := uint32(df.rng.Uint64N(uint64(s.nb)))
		used := s.bucket(b).used.Load() & fullMask
		for used != 0 {
			slot := b*bucketSlots + uint32(bits.TrailingZeros32(used))
			used &= used - 1
			e := s.entry(slot)
			m := e.meta.Load()
			if status(m) != statusLive || expired(m, now) {
				continue
			}
			ports := e.ports.Load()
			bind := e.bind.Load()
			if e.meta.Load() != m {
				continue
			}
			st := stateOf(m)
			if uint8(ports>>24) == ProtoTCP && st != UDP {
				switch st {
				case SynRecv, SynAck:
				case Established:
					if !t.todropEntry(m, ports, now) {
						continue
					}
				default:
					continue
				}
			} else if !t.todropEntry(m, ports, now) {
				continue
			}
			if !s.release(slot, m) {
				continue
			}
			t.retire(m, bind, now)
			if ref := TemplateRef(bind); ref != 0 {
				t.DeleteTemplate(ref)
			}
			t.stats.at(slot).expired.Add(1)
			df.dropped.Add(1)
			dropped++
		}
	}
	return dropped
}

// dropIdle is todrop_entry's grace: an entry refreshed within the last
// 60 s is never dropped.
const dropIdle = 60_000

// todropEntry is todrop_entry: an entry idle for dropIdle whose packet
// count is 1..8 is dropped once in that many calls for its count, so
// entries that saw few packets go first.
func (t *Table) todropEntry(m, ports, now uint64) bool {
	// The stored expiry less the timeout: for a slacked entry (see
	// slack) that is the last write plus the slack, no earlier than the
	// last packet, so an entry the kernel would still call fresh never
	// looks idle here.
	last := payload(m) - min(payload(m), t.timeouts.of(stateOf(m)))
	if now < last+dropIdle {
		return false
	}
	i := inPackets(ports)
	if i > 8 {
		return false
	}
	df := &t.def
	if df.todrop[i]--; df.todrop[i] > 0 {
		return false
	}
	df.todrop[i] = i
	return true
}

// An entry counts its packets in the low bits of its ports word, up to
// inPktsMax: todrop_entry needs only to know whether there were more
// than 8. The count excludes the packet that created the entry.
//
// todrop_entry is the count's only reader, and it runs only while
// drop_entry is not 0. A connection a packet makes while drop_entry is 0
// starts with its count at inPktsMax, as if it had seen more than 8
// packets, so countPacket never writes its entry: the first packets of
// every flow would otherwise dirty its line, as the expiry slack spares
// it from doing later. Such a connection is never chosen for its count if
// drop_entry is turned on during its life (half-open ones still go,
// whatever their count); connections made while drop_entry is on, and
// those sync installs, count exactly.
const (
	inPktsMask = 0xf
	inPktsMax  = 8
)

// inPackets is an entry's packet count, the first one included, as
// IPVS's in_pkts; 9 stands for more than 8.
func inPackets(ports uint64) int { return int(ports&inPktsMask) + 1 }

// countPacket adds a packet to e's count until it reaches more than 8,
// so a busy entry's ports word stops being written after its ninth
// packet.
func countPacket(e *entry) {
	for {
		p := e.ports.Load()
		if p&inPktsMask >= inPktsMax || e.ports.CompareAndSwap(p, p+1) {
			return
		}
	}
}

// nextState is NextDir under the table's state table: while secure_tcp
// is on, every direction follows its half of tcp_states_dos, as the
// kernel's tcp_timeout_change swaps the whole table (set_tcp_state then
// indexes it by the packet's direction: INPUT_ONLY for DR and TUN, INPUT
// and OUTPUT for VS/NAT).
func (t *Table) nextState(s State, ev Event, d Dir) State {
	if t.secureTCP() {
		return NextSecureDir(s, ev, d)
	}
	return NextDir(s, ev, d)
}

// secureSyn is the syn row of tcp_states_dos's input-only half; its fin,
// ack and rst rows equal tcp_states'.
var secureSyn = [SynAck + 1]State{
	//  NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA,
}

// secureInputTable is tcp_states_dos's INPUT half, the client packets of
// a VS/NAT connection under secure_tcp. It differs from tcp_states' INPUT
// in the SYNACK column, which a client packet cannot leave except by a
// RST, and in an ACK on SYN_RECV, which stays SYN_RECV: no client packet
// establishes a connection; the server's ACK after its SYN-ACK does (the
// OUTPUT half's ack row), so a flood of forged client ACKs never makes
// entries ESTABLISHED.
var secureInputTable = [4][SynAck + 1]State{
	//        NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA},
	/*fin*/ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA},
	/*ack*/ {sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA},
	/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
}

// secureOutputTable is tcp_states_dos's OUTPUT half: the server's SYN-ACK
// moves SYN_RECV to SYNACK (and keeps it there) instead of keeping
// SYN_RECV; its other rows equal tcp_states' OUTPUT.
var secureOutputTable = [4][SynAck + 1]State{
	//        NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	/*syn*/ {sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA},
	/*fin*/ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
	/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
	/*rst*/ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
}

// NextSecure is Next under secure_tcp: IPVS's tcp_states_dos input-only
// table.
func NextSecure(s State, ev Event) State {
	if ev == EvSyn && s <= SynAck {
		return secureSyn[s]
	}
	return Next(s, ev)
}

// NextSecureDir is NextDir under secure_tcp: the half of tcp_states_dos
// for direction d. As in NextDir, a NAT packet with none of the four
// flags moves the connection to CLOSE.
func NextSecureDir(s State, ev Event, d Dir) State {
	if d == DirInputOnly {
		return NextSecure(s, ev)
	}
	if s > SynAck || ev > EvRst {
		return s
	}
	if ev == EvNone {
		return Close
	}
	if d == DirOutput {
		return secureOutputTable[ev-EvSyn][s]
	}
	return secureInputTable[ev-EvSyn][s]
}
