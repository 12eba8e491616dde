package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Decap counter slots.
const (
	decapTotal = iota
	decapDecapsulated
	decapPassNotIPIP
	decapPassNotVIP
	decapPassTruncated
	decapPassBadHeader
	decapPassFragment
	decapPassAdjustFailed
	decapCounters
)

// DecapStats are the decapsulation program's counters summed over CPUs.
// Every frame is counted in Total and in exactly one other field.
type DecapStats struct {
	Total         uint64
	Decapsulated  uint64 // outer header stripped, inner packet passed up
	PassNotIPIP   uint64 // not IPv4 protocol 4: left untouched
	PassNotVIP    uint64 // IPIP whose inner destination is no VIP
	PassTruncated uint64
	PassBadHeader uint64 // outer or inner version not 4, or outer IHL below 5
	// PassFragment are fragmented outer packets: only the kernel can
	// reassemble them, and without an ipip device it then drops them.
	PassFragment     uint64
	PassAdjustFailed uint64 // bpf_xdp_adjust_head refused; frame untouched
}

// Decap is the real-server side of VS/TUN on kernels without an ipip
// device: it turns IPIP packets addressed to a VIP back into the plain
// packet the client sent, so the local stack (which holds the VIP on lo)
// accepts it.
type Decap struct {
	loaded
	vips *ebpf.Map
}

// LoadDecap loads the decapsulation program for the given VIPs.
func LoadDecap(vips []netip.Addr) (*Decap, error) {
	set := make(map[[4]byte]bool, len(vips))
	for i, a := range vips {
		a = a.Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("load decap: vip %d (%s): address must be IPv4", i, a)
		}
		set[a.As4()] = true
	}
	if len(set) == 0 {
		return nil, errors.New("load decap: vips: need at least one address")
	}
	d := &Decap{}
	if err := d.load(set); err != nil {
		d.Close()
		return nil, fmt.Errorf("load decap: %w", err)
	}
	return d, nil
}

func (d *Decap) load(set map[[4]byte]bool) error {
	var err error
	if d.stats, err = newCounters("afvs_decap_st", decapCounters); err != nil {
		return err
	}
	d.vips, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_vips",
		Type:       ebpf.Hash,
		KeySize:    4,
		ValueSize:  1,
		MaxEntries: uint32(len(set)),
	})
	if err != nil {
		return fmt.Errorf("create vips map for %d addresses: %w", len(set), err)
	}
	for a := range set {
		if err := d.vips.Put(a, uint8(1)); err != nil {
			return fmt.Errorf("add vip %s: %w", netip.AddrFrom4(a), err)
		}
	}
	insns, err := decapProgram(d.vips, d.stats.m)
	if err != nil {
		return err
	}
	d.prog, err = loadXDP("afvs_decap", insns)
	return err
}

// decapProgram emits the decapsulator. Registers: R6 ctx, R7 data,
// R8 data_end, R9 where the Ethernet header goes after the strip (data +
// outer IHL*4), which is also 14 bytes before the inner IPv4 header.
//
// The Ethernet header is saved on the stack and written back after
// bpf_xdp_adjust_head rather than moved first: if the helper failed after
// a move, the frame would be half rewritten; this way it is untouched.
func decapProgram(vips, stats *ebpf.Map) (asm.Instructions, error) {
	b := newBuilder()
	b.frameStart(stats, xdpPass, decapTotal, "truncated")
	b.emit(
		// IPv4 ethertype.
		asm.JNE.Imm(asm.R3, be16(0x0800), "not_ipip"),
		// Outer fixed header: version 4, IHL >= 5, protocol 4, unfragmented.
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
		asm.LoadMem(asm.R4, asm.R7, ethLen+ipOffProto, asm.Byte),
		asm.JNE.Imm(asm.R4, ipProtoIPIP, "not_ipip"),
		asm.LoadMem(asm.R4, asm.R7, ethLen+ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R4, be16(0x3fff), "fragment"), // MF or offset
		// Inner IPv4 header present and version 4.
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Reg(asm.R9, asm.R3),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, ethLen+ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R4, asm.R9, ethLen+ipOffVerIHL, asm.Byte),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "bad_header"),
		// Inner destination must be a VIP.
		asm.StoreMem(asm.RFP, slotScratch, asm.R3, asm.DWord),
		asm.LoadMem(asm.R4, asm.R9, ethLen+ipOffDst, asm.Word),
		asm.StoreMem(asm.RFP, slotKey, asm.R4, asm.Word),
		asm.LoadMapPtr(asm.R1, vips.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "not_vip"),
	)
	// Drop the outer IPv4 header; the inner packet is IPv4 too.
	emitStrip(b, 0x0800, decapDecapsulated)

	b.passWith("not_ipip", decapPassNotIPIP)
	b.passWith("not_vip", decapPassNotVIP)
	b.passWith("truncated", decapPassTruncated)
	b.passWith("bad_header", decapPassBadHeader)
	b.passWith("fragment", decapPassFragment)
	b.passWith("adjust_failed", decapPassAdjustFailed)
	return b.finish()
}

// Stats reads the counters summed over CPUs.
func (d *Decap) Stats() (DecapStats, error) {
	v, err := d.stats.read()
	if err != nil {
		return DecapStats{}, fmt.Errorf("decap stats: %w", err)
	}
	return DecapStats{
		Total:            v[decapTotal],
		Decapsulated:     v[decapDecapsulated],
		PassNotIPIP:      v[decapPassNotIPIP],
		PassNotVIP:       v[decapPassNotVIP],
		PassTruncated:    v[decapPassTruncated],
		PassBadHeader:    v[decapPassBadHeader],
		PassFragment:     v[decapPassFragment],
		PassAdjustFailed: v[decapPassAdjustFailed],
	}, nil
}

// Close unloads the program and its maps; attachments stay until closed.
func (d *Decap) Close() error { return d.close(d.vips) }
