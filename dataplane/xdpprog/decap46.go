package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Decap46 counter slots.
const (
	d46Total = iota
	d46IPIP
	d46SixInFour
	d46SixInSix
	d46FourInSix
	d46PassNotTunnel
	d46PassNotVIP
	d46PassTruncated
	d46PassBadHeader
	d46PassFragment
	d46PassAdjustFailed
	d46Counters
)

// Header fields of IPv6 used by the decapsulator.
const (
	ipv6Len       = 40
	ip6OffNext    = 6
	ip6OffDst     = 24
	ipProtoIPv6   = 41 // IPv6 encapsulation (RFC 2473, RFC 4213)
	ipProtoFrag6  = 44 // IPv6 Fragment header
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	slotKey6      = -64 // 16 bytes: an IPv6 VIP key, below slotStats
)

// Decap46Stats are Decap46's counters summed over CPUs. Every frame is
// counted in Total and in exactly one other field.
type Decap46Stats struct {
	Total     uint64
	IPIP      uint64 // IPv4 in IPv4 stripped
	SixInFour uint64 // IPv6 in IPv4 (protocol 41) stripped
	SixInSix  uint64 // IPv6 in IPv6 (next header 41) stripped
	FourInSix uint64 // IPv4 in IPv6 (next header 4) stripped

	PassNotTunnel uint64 // neither IPv4 protocol 4 or 41 nor IPv6 next header 4 or 41: left untouched
	PassNotVIP    uint64 // a tunnel whose inner destination is no VIP
	PassTruncated uint64
	PassBadHeader uint64 // a version nibble that does not match its ethertype or next header, or outer IHL below 5
	// PassFragment are fragmented outer packets (IPv4 MF or offset, or an
	// IPv6 Fragment header right after the fixed one): only the kernel can
	// reassemble them.
	PassFragment     uint64
	PassAdjustFailed uint64 // bpf_xdp_adjust_head refused; frame untouched
}

// Decapsulated is the number of frames stripped, all families together.
func (s Decap46Stats) Decapsulated() uint64 { return s.IPIP + s.SixInFour + s.SixInSix + s.FourInSix }

// Decap46 is the real-server side of VS/TUN for both families: it strips
// the outer header of IPv4-in-IPv4, IPv6-in-IPv4, IPv6-in-IPv6 and
// IPv4-in-IPv6 packets whose inner destination is one of its VIPs and sets
// the ethertype to the inner packet's family, so the local stack (which
// holds the VIPs on lo) accepts the client's packet as if it had arrived
// directly. Everything else passes untouched. The outer IPv6 header must be
// followed directly by the inner packet, as the director sends it (no
// extension headers). Frames with an 802.1Q tag pass untouched.
type Decap46 struct {
	loaded
	vips4, vips6 *ebpf.Map
}

// LoadDecap46 loads the decapsulator for VIPs of either family.
func LoadDecap46(vips []netip.Addr) (*Decap46, error) {
	set4 := map[[4]byte]bool{}
	set6 := map[[16]byte]bool{}
	for i, a := range vips {
		if !a.IsValid() {
			return nil, fmt.Errorf("load decap46: vip %d: address missing", i)
		}
		a = a.Unmap()
		if a.Is4() {
			set4[a.As4()] = true
		} else {
			set6[a.As16()] = true
		}
	}
	if len(set4)+len(set6) == 0 {
		return nil, errors.New("load decap46: vips: need at least one address")
	}
	d := &Decap46{}
	if err := d.load(set4, set6); err != nil {
		d.Close()
		return nil, fmt.Errorf("load decap46: %w", err)
	}
	return d, nil
}

func (d *Decap46) load(set4 map[[4]byte]bool, set6 map[[16]byte]bool) error {
	var err error
	if d.stats, err = newCounters("afvs_dec46_st", d46Counters); err != nil {
		return err
	}
	// A hash map needs at least one entry of room; an empty family is
	// looked up and never found.
	if d.vips4, err = ebpf.NewMap(&ebpf.MapSpec{Name: "afvs_vips4", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: uint32(max(len(set4), 1))}); err != nil {
		return fmt.Errorf("create IPv4 vips map for %d addresses: %w", len(set4), err)
	}
	if d.vips6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "afvs_vips6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1, MaxEntries: uint32(max(len(set6), 1))}); err != nil {
		return fmt.Errorf("create IPv6 vips map for %d addresses: %w", len(set6), err)
	}
	for a := range set4 {
		if err := d.vips4.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("add vip %s: %w", netip.AddrFrom4(a), err)
		}
	}
	for a := range set6 {
		if err := d.vips6.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("add vip %s: %w", netip.AddrFrom16(a), err)
		}
	}
	insns, err := decap46Program(d.vips4, d.vips6, d.stats.m)
	if err != nil {
		return err
	}
	d.prog, err = loadXDP("afvs_decap46", insns)
	return err
}

// decap46Program emits the decapsulator. Registers: R6 ctx, R7 data, R8
// data_end, R9 data + outer header length, which is where the Ethernet
// header goes after the strip and 14 bytes before the inner header. The
// outer header length is kept at slotScratch across the VIP lookup. As in
// decapProgram, the Ethernet header is saved on the stack before
// bpf_xdp_adjust_head and written back after it, so a failing helper
// leaves the frame untouched.
func decap46Program(vips4, vips6, stats *ebpf.Map) (asm.Instructions, error) {
	b := newBuilder()
	b.frameStart(stats, xdpPass, d46Total, "truncated")
	b.emit(
		asm.JEq.Imm(asm.R3, be16(etherTypeIPv4), "outer4"),
		asm.JEq.Imm(asm.R3, be16(etherTypeIPv6), "outer6"),
		asm.Ja.Label("not_tunnel"),
	)

	// Outer IPv4: version 4, IHL >= 5, protocol 4 or 41, unfragmented.
	b.label("outer4")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R7, ethLen+ipOffVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "bad_header"),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, "bad_header"),
		asm.LSh.Imm(asm.R3, 2),
		asm.LoadMem(asm.R5, asm.R7, ethLen+ipOffProto, asm.Byte),
		asm.JEq.Imm(asm.R5, ipProtoIPIP, "outer4_tunnel"),
		asm.JEq.Imm(asm.R5, ipProtoIPv6, "outer4_tunnel"),
		asm.Ja.Label("not_tunnel"),
	)
	b.label("outer4_tunnel")
	b.emit(
		asm.LoadMem(asm.R4, asm.R7, ethLen+ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R4, be16(0x3fff), "fragment"), // MF or offset
		asm.StoreMem(asm.RFP, slotScratch, asm.R3, asm.DWord),
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Reg(asm.R9, asm.R3),
		asm.JEq.Imm(asm.R5, ipProtoIPIP, "inner4_of4"),
		asm.Ja.Label("inner6_of4"),
	)

	// Outer IPv6: version 6, next header 4 or 41 (or a fragment).
	b.label("outer6")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+ipv6Len),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R4, asm.R7, ethLen, asm.Byte),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 6, "bad_header"),
		asm.Mov.Imm(asm.R3, ipv6Len),
		asm.StoreMem(asm.RFP, slotScratch, asm.R3, asm.DWord),
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Imm(asm.R9, ipv6Len),
		asm.LoadMem(asm.R5, asm.R7, ethLen+ip6OffNext, asm.Byte),
		asm.JEq.Imm(asm.R5, ipProtoIPIP, "inner4_of6"),
		asm.JEq.Imm(asm.R5, ipProtoIPv6, "inner6_of6"),
		asm.JEq.Imm(asm.R5, ipProtoFrag6, "fragment"),
		asm.Ja.Label("not_tunnel"),
	)

	inner4 := func(from string, counter uint32) {
		b.label(from)
		b.emit(
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Add.Imm(asm.R2, ethLen+ipv4MinLen),
			asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
			asm.LoadMem(asm.R4, asm.R9, ethLen+ipOffVerIHL, asm.Byte),
			asm.RSh.Imm(asm.R4, 4),
			asm.JNE.Imm(asm.R4, 4, "bad_header"),
			asm.LoadMem(asm.R4, asm.R9, ethLen+ipOffDst, asm.Word),
			asm.StoreMem(asm.RFP, slotKey, asm.R4, asm.Word),
			asm.LoadMapPtr(asm.R1, vips4.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, slotKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "not_vip"),
		)
		emitStrip(b, etherTypeIPv4, counter)
	}
	inner6 := func(from string, counter uint32) {
		b.label(from)
		b.emit(
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Add.Imm(asm.R2, ethLen+ipv6Len),
			asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
			asm.LoadMem(asm.R4, asm.R9, ethLen, asm.Byte),
			asm.RSh.Imm(asm.R4, 4),
			asm.JNE.Imm(asm.R4, 6, "bad_header"),
		)
		for i := int16(0); i < 16; i += 4 {
			b.emit(
				asm.LoadMem(asm.R4, asm.R9, ethLen+ip6OffDst+i, asm.Word),
				asm.StoreMem(asm.RFP, slotKey6+i, asm.R4, asm.Word),
			)
		}
		b.emit(
			asm.LoadMapPtr(asm.R1, vips6.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, slotKey6),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "not_vip"),
		)
		emitStrip(b, etherTypeIPv6, counter)
	}
	inner4("inner4_of4", d46IPIP)
	inner6("inner6_of4", d46SixInFour)
	inner4("inner4_of6", d46FourInSix)
	inner6("inner6_of6", d46SixInSix)

	b.passWith("not_tunnel", d46PassNotTunnel)
	b.passWith("not_vip", d46PassNotVIP)
	b.passWith("truncated", d46PassTruncated)
	b.passWith("bad_header", d46PassBadHeader)
	b.passWith("fragment", d46PassFragment)
	b.passWith("adjust_failed", d46PassAdjustFailed)
	return b.finish()
}

// emitStrip saves the Ethernet header with the inner family's ethertype,
// removes the outer header (its length is at slotScratch) with
// bpf_xdp_adjust_head, writes the Ethernet header back in front of the
// inner packet, counts the frame under counter and passes it.
func emitStrip(b *builder, etherType uint16, counter uint32) {
	b.emit(
		asm.LoadMem(asm.R1, asm.R7, 0, asm.Word),
		asm.StoreMem(asm.RFP, slotEth, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 4, asm.Word),
		asm.StoreMem(asm.RFP, slotEth+4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 8, asm.Word),
		asm.StoreMem(asm.RFP, slotEth+8, asm.R1, asm.Word),
		asm.StoreImm(asm.RFP, slotEth+12, int64(be16(etherType)), asm.Half),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMem(asm.R2, asm.RFP, slotScratch, asm.DWord),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "adjust_failed"),
		asm.LoadMem(asm.R7, asm.R6, xdpMdData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, xdpMdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen),
		asm.JGT.Reg(asm.R2, asm.R8, "adjust_failed"),
		asm.LoadMem(asm.R1, asm.RFP, slotEth, asm.Word),
		asm.StoreMem(asm.R7, 0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotEth+4, asm.Word),
		asm.StoreMem(asm.R7, 4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotEth+8, asm.Word),
		asm.StoreMem(asm.R7, 8, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotEth+12, asm.Half),
		asm.StoreMem(asm.R7, 12, asm.R1, asm.Half),
	)
	b.count(counter)
	b.ret(xdpPass)
}

// Stats reads the counters summed over CPUs.
func (d *Decap46) Stats() (Decap46Stats, error) {
	v, err := d.stats.read()
	if err != nil {
		return Decap46Stats{}, fmt.Errorf("decap46 stats: %w", err)
	}
	return Decap46Stats{
		Total:            v[d46Total],
		IPIP:             v[d46IPIP],
		SixInFour:        v[d46SixInFour],
		SixInSix:         v[d46SixInSix],
		FourInSix:        v[d46FourInSix],
		PassNotTunnel:    v[d46PassNotTunnel],
		PassNotVIP:       v[d46PassNotVIP],
		PassTruncated:    v[d46PassTruncated],
		PassBadHeader:    v[d46PassBadHeader],
		PassFragment:     v[d46PassFragment],
		PassAdjustFailed: v[d46PassAdjustFailed],
	}, nil
}

// Close unloads the program and its maps; attachments stay until closed.
func (d *Decap46) Close() error { return d.close(d.vips4, d.vips6) }
