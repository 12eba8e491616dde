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

// dropBlocked drops, and counts under counter, a frame whose source
// address is in the blocklist with a block that has not ended; any other
// frame falls through. The source is the first word of the local-node
// flow key, which localKeyAddrs writes for every TCP/UDP frame; ICMP
// errors, which have no such key, fall through. It clobbers R0-R5 and R9.
func (b *builder) dropBlocked(blocked *ebpf.Map, counter uint32) {
	pass := b.fresh("not_blocked")
	b.emit(
		// An ICMP error's source is a router, and the flow key was never
		// written for it: the blocklist is for TCP/UDP sources.
		asm.LoadMem(asm.R1, asm.RFP, slotKey+7, asm.Byte),
		asm.JEq.Imm(asm.R1, flagICMPError, pass),
	)
	b.dropIfBlockedAt(blocked, slotLocal, counter, pass) // the source address
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
	now, err := monotonicNow()
	if err != nil {
		return fmt.Errorf("block %s: %w", src, err)
	}
	if src.Is6() {
		p := s.blockKey6(src)
		if err := s.block6.blocked.Put(p.Addr().As16(), uint64(now+d)); err != nil {
			return fmt.Errorf("block %s: %w", p, err)
		}
		return nil
	}
	if err := s.blocked.Put(src.As4(), uint64(now+d)); err != nil {
		return fmt.Errorf("block %s: %w", src, err)
	}
	return nil
}

// Unblock lifts src's block, if any: for an IPv6 source, the block of
// its prefix.
func (s *Steering) Unblock(src netip.Addr) error {
	src = src.Unmap()
	if src.Is6() && src.Zone() == "" {
		p := s.blockKey6(src)
		if err := s.block6.blocked.Delete(p.Addr().As16()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("unblock %s: %w", p, err)
		}
		return nil
	}
	if !src.Is4() {
		return nil
	}
	if err := s.blocked.Delete(src.As4()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unblock %s: %w", src, err)
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
