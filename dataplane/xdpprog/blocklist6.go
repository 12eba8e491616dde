package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// IPv6 blocklist. An IPv6 source is blocked by its prefix: Block masks the
// address with the steering program's IPv6 block prefix (DefaultBlockPrefix6
// until SetBlockPrefix6 changes it) and keys a second LRU hash by the
// masked 16 bytes; the program masks a matched frame's source the same
// way, with the mask it reads from a one-entry array, before it looks it
// up. A /64 is the default because it is the smallest block an IPv6 site
// is given and every host may pick any address in it (SLAAC, privacy
// addresses), so one flooding host can change its address at will within
// it but not beyond; a single address (/128) would be no block at all.

// DefaultBlockPrefix6 is the prefix length an IPv6 source is blocked by
// until SetBlockPrefix6 says otherwise.
const DefaultBlockPrefix6 = 64

// blockMaps6 are the IPv6 blocklist (masked source -> end of the block,
// in bpf_ktime_get_ns time) and the mask array.
type blockMaps6 struct {
	blocked *ebpf.Map
	mask    *ebpf.Map
}

func newBlockMaps6() (blockMaps6, error) {
	var b blockMaps6
	var err error
	b.blocked, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_blocked6",
		Type:       ebpf.LRUHash,
		KeySize:    16,
		ValueSize:  8,
		MaxEntries: MaxBlocked,
	})
	if err != nil {
		return b, fmt.Errorf("create IPv6 blocklist map: %w", err)
	}
	b.mask, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_block6_msk",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  16,
		MaxEntries: 1,
	})
	if err != nil {
		b.blocked.Close()
		return blockMaps6{}, fmt.Errorf("create IPv6 block mask map: %w", err)
	}
	if err := b.mask.Put(uint32(0), mask6(DefaultBlockPrefix6)); err != nil {
		b.close()
		return blockMaps6{}, fmt.Errorf("set IPv6 block mask: %w", err)
	}
	return b, nil
}

func (b blockMaps6) close() {
	for _, m := range []*ebpf.Map{b.blocked, b.mask} {
		if m != nil {
			m.Close()
		}
	}
}

// mask6 is the 16-byte mask of a prefix length.
func mask6(bits int) [16]byte {
	var m [16]byte
	for i := range bits {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// dropBlocked6 drops, and counts under counter, an IPv6 frame whose
// source (the first 16 bytes of slotSrc6, steernat6.go's copy), masked in
// place by the block prefix, is in the IPv6 blocklist with a
// block that has not ended; any other frame, and an ICMPv6 error (whose
// source is a router, or a VS/NAT real server: the key's flags say
// flagICMPError), falls through, as does every frame while the IPv6
// gate (blocklist.go) is clear. It clobbers R0-R5 and R9.
func (b *builder) dropBlocked6(gate *ebpf.Map, m blockMaps6, counter uint32) {
	pass := b.fresh("not_blocked6")
	b.blockGate(gate, gate6, pass)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, slotSvc6+19, asm.Byte),
		asm.JEq.Imm(asm.R1, flagICMPError, pass),
		asm.LoadMapValue(asm.R0, m.mask.FD(), 0), // one entry: its address
	)
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R1, asm.R0, i, asm.Word),
			asm.LoadMem(asm.R2, asm.RFP, slotSrc6+i, asm.Word),
			asm.And.Reg(asm.R2, asm.R1),
			asm.StoreMem(asm.RFP, slotSrc6+i, asm.R2, asm.Word),
		)
	}
	b.dropIfBlockedAt(m.blocked, slotSrc6, counter, pass) // blocklist.go
}

// SetBlockPrefix6 sets the prefix length, 1 to 128, by which IPv6 sources
// are blocked from now on. Changing it lifts every IPv6 block, whose keys
// were masked by the old length; the IPv4 blocklist is untouched. A
// refused value changes nothing.
func (s *Steering) SetBlockPrefix6(bits int) error {
	if bits < 1 || bits > 128 {
		return fmt.Errorf("set IPv6 block prefix /%d: must be 1 to 128 bits", bits)
	}
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	if bits == s.blockBits6() {
		return nil
	}
	if err := s.block6.mask.Put(uint32(0), mask6(bits)); err != nil {
		return fmt.Errorf("set IPv6 block prefix /%d: %w", bits, err)
	}
	s.prefix6 = bits
	var (
		keys []netip.Addr
		key  [16]byte
		end  uint64
	)
	it := s.block6.blocked.Iterate()
	for it.Next(&key, &end) {
		keys = append(keys, netip.AddrFrom16(key))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("set IPv6 block prefix /%d: list the blocks: %w", bits, err)
	}
	for _, k := range keys {
		if err := s.block6.blocked.Delete(k.As16()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("set IPv6 block prefix /%d: lift the block of %s: %w", bits, k, err)
		}
	}
	// No IPv6 block is left: the gate may close (blocklist.go).
	if err := s.gate.set(gate6, 0); err != nil {
		return fmt.Errorf("set IPv6 block prefix /%d: close the IPv6 blocklist gate: %w", bits, err)
	}
	return nil
}

// BlockPrefix6 is the prefix length IPv6 sources are blocked by.
func (s *Steering) BlockPrefix6() int {
	s.blockMu.Lock()
	defer s.blockMu.Unlock()
	return s.blockBits6()
}

func (s *Steering) blockBits6() int {
	if s.prefix6 == 0 {
		return DefaultBlockPrefix6
	}
	return s.prefix6
}

// blockKey6 is src's IPv6 blocklist key: the prefix it is blocked by.
// The caller holds blockMu.
func (s *Steering) blockKey6(src netip.Addr) netip.Prefix {
	return netip.PrefixFrom(src, s.blockBits6()).Masked()
}
