package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// MaxBlocked is how many client addresses the steering program's
// blocklist holds. It is an LRU hash: when full, adding a source evicts
// the one least recently looked up.
const MaxBlocked = 1 << 16

// MaxBlockFor is the longest a source may be blocked in one go.
const MaxBlockFor = 24 * time.Hour

// newBlocklist creates the blocklist map: IPv4 source address (wire
// order) -> the CLOCK_MONOTONIC time in ns (bpf_ktime_get_ns's clock) at
// which the block ends.
func newBlocklist() (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_blocked",
		Type:       ebpf.LRUHash,
		KeySize:    4,
		ValueSize:  8,
		MaxEntries: MaxBlocked,
	})
	if err != nil {
		return nil, fmt.Errorf("create blocklist map: %w", err)
	}
	return m, nil
}

// The blocklist gate. Looking a source up in the blocklist (an LRU hash)
// is the dearest step of a matched frame, and it almost always finds
// nothing. So the program first reads a one-entry array holding a word
// per family, IPv4 then IPv6, and skips that family's blocklist while the
// word is 0. The Go side keeps the words exact under blockMu: Block sets
// the word before it writes the block, so a live block is never in a map
// whose gate is clear; and a word is cleared only once every block
// written since it was set has ended (the latest end is kept; a block
// that has ended drops nothing, in the map or not), by a timer armed for
// that end, or once SetBlockPrefix6 has removed every IPv6 block.
// Unblock leaves the gate set until that end: lifting a block early is
// rare, and a set gate only costs the lookup.
const (
	gate4 = iota
	gate6
	gates
)

// blockGate is the gate map and what the Go side knows of it; blockMu
// guards every field.
type blockGate struct {
	m       *ebpf.Map
	on      [gates]uint32        // what m holds
	end     [gates]time.Duration // while on: the latest end of a block written since
	timer   *time.Timer          // runs sweepGate
	at      time.Duration        // when it is due, while pending
	pending bool                 // timer armed and not yet run
	closed  bool                 // the Steering is closed: the timer does nothing
}

func newBlockGate() (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_block_on",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4 * gates,
		MaxEntries: 1, // a direct value pointer needs a single entry
	})
	if err != nil {
		return nil, fmt.Errorf("create blocklist gate map: %w", err)
	}
	return m, nil
}

// set writes family's word as v, and the shadow once the write is
// done. The caller holds blockMu.
func (g *blockGate) set(family int, v uint32) error {
	on := g.on
	on[family] = v
	if err := g.m.Put(uint32(0), on); err != nil {
		return err
	}
	g.on = on
	if v == 0 {
		g.end[family] = 0
	}
	return nil
}

// open sets family's word unless it is set, before a block is written.
// It reports whether it set the word, so that a block that then fails to
// be written can close it again. The caller holds blockMu.
func (g *blockGate) open(family int) (opened bool, err error) {
	if g.on[family] != 0 {
		return false, nil
	}
	if err := g.set(family, 1); err != nil {
		return false, err
	}
	return true, nil
}

// armGate makes sure sweepGate runs once the earliest of the set words'
// latest ends has passed. The caller holds blockMu.
func (s *Steering) armGate(now time.Duration) {
	g := &s.gate
	if g.closed {
		return
	}
	next := time.Duration(0)
	for f := range gates {
		if g.on[f] != 0 && (next == 0 || g.end[f] < next) {
			next = g.end[f]
		}
	}
	if next == 0 || g.pending && g.at <= next {
		return
	}
	wait := max(next-now, time.Millisecond)
	if g.timer == nil {
		g.timer = time.AfterFunc(wait, s.sweepGate)
	} else {
		g.timer.Reset(wait)
	}
	g.pending, g.at = true, next
}

// sweepGate clears each word of the gate whose blocks have all ended,
// and arms itself again for those still live.
func (s *Steering) sweepGate() {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	g := &s.gate
	g.pending = false
	if g.closed {
		return
	}
	now, err := monotonicNow()
	if err != nil {
		return // cannot happen: CLOCK_MONOTONIC always reads
	}
	for f := range gates {
		if g.on[f] != 0 && now >= g.end[f] {
			if err := g.set(f, 0); err != nil {
				// Left set, which is always safe; try again later.
				g.end[f] = now + time.Second
			}
		}
	}
	s.armGate(now)
}

// close stops the timer for good. The caller holds blockMu.
func (g *blockGate) close() {
	g.closed = true
	if g.timer != nil {
		g.timer.Stop()
	}
}

// dropBlocked drops, and counts under counter, a frame whose source
// address is in the blocklist with a block that has not ended; any other
// frame falls through. While the IPv4 gate is clear it falls through at
// once: no block can be live then. The source is the first word of the
// source key at slotSource, which every IPv4 path to a redirect writes
// with the frame's source address and protocol; an ICMP frame (an error
// from a router, a message from a VS/NAT real server) falls through: the
// blocklist is for TCP/UDP sources. It clobbers R0-R5 and R9.
func (b *builder) dropBlocked(gate, blocked *ebpf.Map, counter uint32) {
	pass := b.fresh("not_blocked")
	b.blockGate(gate, gate4, pass)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, slotSource+6, asm.Byte),
		asm.JEq.Imm(asm.R1, ipProtoICMP, pass),
	)
	b.dropIfBlockedAt(blocked, slotSource, counter, pass) // the source address
}

// blockGate jumps to pass while family's word of the gate is 0. It reads
// the word through a pointer the loader puts into the instruction (a map
// value's address, as for a global variable), so it costs two loads and
// no lookup. It clobbers R1.
func (b *builder) blockGate(gate *ebpf.Map, family int, pass string) {
	b.emit(
		asm.LoadMapValue(asm.R1, gate.FD(), uint32(4*family)),
		asm.LoadMem(asm.R1, asm.R1, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, pass),
	)
}

// dropIfBlockedAt looks the key at stack slot key up in blocked and
// drops the frame, counted under counter, when a block is found whose end
// (its value, in bpf_ktime_get_ns time) is still ahead; otherwise it
// jumps to pass, which it places after the drop. It clobbers R0-R5 and
// R9.
func (b *builder) dropIfBlockedAt(blocked *ebpf.Map, key int16, counter uint32, pass string) {
	b.emit(
		asm.LoadMapPtr(asm.R1, blocked.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, pass),
		asm.LoadMem(asm.R9, asm.R0, 0, asm.DWord), // the block's end
		asm.FnKtimeGetNs.Call(),
		asm.JGE.Reg(asm.R0, asm.R9, pass),
	)
	b.count(counter)
	b.ret(xdpDrop)
	b.label(pass)
}

// monotonicNow reads the clock bpf_ktime_get_ns reads.
func monotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// Block makes the steering program drop every frame from src that it
// would redirect, for d from now, counted as Blocked. Blocking a blocked
// source again moves the end of its block. Errors name the bad value.
//
// An IPv6 source is blocked by its prefix of BlockPrefix6 bits
// (blocklist6.go): every address in it is dropped.
func (s *Steering) Block(src netip.Addr, d time.Duration) error {
	src = src.Unmap()
	if !src.IsValid() || src.Zone() != "" {
		return fmt.Errorf("block %s: must be an IPv4 or IPv6 address without a zone", src)
	}
	if d <= 0 || d > MaxBlockFor {
		return fmt.Errorf("block %s for %s: must be more than 0 and at most %s", src, d, MaxBlockFor)
	}
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	now, err := monotonicNow()
	if err != nil {
		return fmt.Errorf("block %s: %w", src, err)
	}
	// What is blocked, as errors name it: the address, or for IPv6 the
	// prefix it is blocked by.
	var what fmt.Stringer = src
	family := gate4
	var p6 netip.Prefix
	if src.Is6() {
		p6 = s.blockKey6(src)
		what, family = p6, gate6
	}
	opened, err := s.gate.open(family)
	if err != nil {
		return fmt.Errorf("block %s: open the blocklist gate: %w", what, err)
	}
	if family == gate6 {
		err = s.block6.blocked.Put(p6.Addr().As16(), uint64(now+d))
	} else {
		err = s.blocked.Put(src.As4(), uint64(now+d))
	}
	if err != nil {
		if opened {
			// No block was live with the gate clear, and none is now.
			_ = s.gate.set(family, 0)
		}
		return fmt.Errorf("block %s: %w", what, err)
	}
	s.gate.end[family] = max(s.gate.end[family], now+d)
	s.armGate(now)
	return nil
}

// Unblock lifts src's block, if any: for an IPv6 source, the block of
// its prefix. Lifting the family's last block closes its gate at once
// rather than when the latest block would have ended.
func (s *Steering) Unblock(src netip.Addr) error {
	src = src.Unmap()
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	var (
		m      *ebpf.Map
		key    any
		what   fmt.Stringer = src
		family              = gate4
	)
	switch {
	case src.Is6() && src.Zone() == "":
		p := s.blockKey6(src)
		m, key, what, family = s.block6.blocked, p.Addr().As16(), p, gate6
	case src.Is4():
		m, key = s.blocked, src.As4()
	default:
		return nil
	}
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unblock %s: %w", what, err)
	}
	// Block writes only under blockMu, held here, so an empty map stays
	// empty until the gate is closed. A gate that cannot be closed, or a
	// map that cannot be read, leaves the word set, which is always safe:
	// the timer clears it at the latest end.
	if s.gate.on[family] != 0 {
		next := make([]byte, m.KeySize())
		if err := m.NextKey(nil, next); errors.Is(err, ebpf.ErrKeyNotExist) {
			_ = s.gate.set(family, 0)
		}
	}
	return nil
}

// Blocked lists the blocks that have not ended, up to max: an IPv4
// source as its /32, an IPv6 one as the prefix it is blocked by.
func (s *Steering) Blocked(max int) ([]netip.Prefix, error) {
	now, err := monotonicNow()
	if err != nil {
		return nil, err
	}
	var (
		out  []netip.Prefix
		key  [4]byte
		key6 [16]byte
		end  uint64
	)
	it := s.blocked.Iterate()
	for len(out) < max && it.Next(&key, &end) {
		if time.Duration(end) > now {
			out = append(out, netip.PrefixFrom(netip.AddrFrom4(key), 32))
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list blocklist: %w", err)
	}
	bits := s.BlockPrefix6()
	it = s.block6.blocked.Iterate()
	for len(out) < max && it.Next(&key6, &end) {
		if time.Duration(end) > now {
			out = append(out, netip.PrefixFrom(netip.AddrFrom16(key6), bits))
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list IPv6 blocklist: %w", err)
	}
	return out, nil
}
