package xdpprog

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// license is declared to the kernel with every program. None of the helpers
// used here is GPL-only, so the choice does not gate loading.
const license = "GPL"

// Offsets into struct xdp_md, the context an XDP program receives in R1.
const (
	xdpMdData         = 0
	xdpMdDataEnd      = 4
	xdpMdRxQueueIndex = 16
)

// XDP verdicts as the kernel numbers them.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// Stack slots below the frame pointer. Map keys must live on the stack, so
// every program builds its lookup key at slotKey and its counter index at
// slotCounter; the two never overlap.
const (
	slotKey       = -8  // 8 bytes: services key or vips key
	slotCounter   = -16 // 4 bytes: key 0 of the counter map
	slotScratch   = -24 // 8 bytes: a value kept across a helper call
	slotEth       = -40 // 16 bytes: a saved Ethernet header (14 used)
	slotStats     = -48 // 8 bytes: pointer to this CPU's counter block
	slotSource    = -72 // 8 bytes: a VS/NAT reply's source key (steering)
	slotSourceIHL = -80 // 8 bytes: the IPv4 header length across the ICMP source lookup
)

// Header sizes and field offsets used by the parsers.
const (
	ethLen       = 14
	vlanLen      = 4
	ipv4MinLen   = 20
	tcpMinLen    = 20
	udpLen       = 8
	ipProtoICMP  = 1
	ipProtoIPIP  = 4
	ipProtoTCP   = 6
	ipProtoUDP   = 17
	ipOffVerIHL  = 0
	ipOffFrag    = 6
	ipOffProto   = 9
	ipOffSrc     = 12
	ipOffDst     = 16
	l4OffDstPort = 2
)

// be16 returns what a 16-bit load from packet memory yields on this host for
// the big-endian (wire) value v. Comparing against it avoids a byte swap in
// the program and keeps the programs correct on either host byte order.
func be16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// builder accumulates instructions and resolves labels. cilium/ebpf resolves a
// jump by finding the instruction whose symbol equals the jump's reference, and
// an instruction carries one symbol, so two labels that land on the same
// instruction are merged: the later one becomes an alias of the first.
type builder struct {
	insns   asm.Instructions
	pending string            // label waiting for the next instruction
	alias   map[string]string // label -> label actually placed
	defined map[string]bool
	seq     int
	err     error
}

func newBuilder() *builder {
	return &builder{alias: map[string]string{}, defined: map[string]bool{}}
}

// emit appends instructions, attaching any pending label to the first one.
func (b *builder) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		if b.pending != "" {
			ins = ins.WithSymbol(b.pending)
			b.pending = ""
		}
		b.insns = append(b.insns, ins)
	}
}

// label marks the position of the next emitted instruction.
func (b *builder) label(name string) {
	if b.defined[name] {
		b.err = fmt.Errorf("label %q defined twice", name)
		return
	}
	b.defined[name] = true
	if b.pending != "" {
		b.alias[name] = b.pending
		return
	}
	b.pending = name
}

// fresh returns a label name unique within this program, for the local
// jumps inside a macro that is emitted more than once.
func (b *builder) fresh(prefix string) string {
	b.seq++
	return fmt.Sprintf("%s_%d", prefix, b.seq)
}

// finish rewrites aliased references and returns the program text.
func (b *builder) finish() (asm.Instructions, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.pending != "" {
		return nil, fmt.Errorf("label %q at end of program", b.pending)
	}
	for i, ins := range b.insns {
		ref := ins.Reference()
		if ref == "" {
			continue
		}
		if to, ok := b.alias[ref]; ok {
			b.insns[i] = ins.WithReference(to)
			ref = to
		}
		if !b.defined[ref] {
			return nil, fmt.Errorf("jump to undefined label %q", ref)
		}
	}
	return b.insns, nil
}

// loadCounters looks up this CPU's counter block once, at program start,
// and spills the pointer to slotStats, so each later count is two memory
// operations instead of a helper call. The array lookup of key 0 cannot
// fail, but the verifier insists on the check; onFail is the verdict then.
// It clobbers R0-R5.
func (b *builder) loadCounters(stats *ebpf.Map, onFail int32) {
	ok := b.fresh("counters_ok")
	b.emit(
		asm.StoreImm(asm.RFP, slotCounter, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, stats.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotCounter),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, ok),
		asm.Mov.Imm(asm.R0, onFail),
		asm.Return(),
	)
	b.label(ok)
	b.emit(asm.StoreMem(asm.RFP, slotStats, asm.R0, asm.DWord))
}

// frameStart is how every program here begins: keep the context in R6,
// set up the counters (onFail is the verdict if that fails), count the
// frame under total, load data and data_end into R7 and R8, and jump to
// short unless a whole Ethernet header is there; the ethertype is left in
// R3.
func (b *builder) frameStart(stats *ebpf.Map, onFail int32, total uint32, short string) {
	b.emit(asm.Mov.Reg(asm.R6, asm.R1))
	b.loadCounters(stats, onFail)
	b.count(total)
	b.frameData(short)
}

// frameStartUncounted is frameStart for a program whose every exit counts
// exactly one outcome, so that its total is their sum and need not be
// counted apart.
func (b *builder) frameStartUncounted(stats *ebpf.Map, onFail int32, short string) {
	b.emit(asm.Mov.Reg(asm.R6, asm.R1))
	b.loadCounters(stats, onFail)
	b.frameData(short)
}

func (b *builder) frameData(short string) {
	b.emit(
		asm.LoadMem(asm.R7, asm.R6, xdpMdData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, xdpMdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen),
		asm.JGT.Reg(asm.R2, asm.R8, short),
		asm.LoadMem(asm.R3, asm.R7, 12, asm.Half),
	)
}

// count adds one to counter idx. It clobbers R1 and R2 only. Each CPU has
// its own block and XDP runs with preemption off, so a plain
// load/add/store is race-free.
func (b *builder) count(idx uint32) {
	b.increment(idx, asm.Add.Imm(asm.R2, 1))
}

// countReg adds the value of reg (not R1 or R2) to counter idx.
func (b *builder) countReg(idx uint32, reg asm.Register) {
	b.increment(idx, asm.Add.Reg(asm.R2, reg))
}

func (b *builder) increment(idx uint32, add asm.Instruction) {
	off := int16(idx * 8)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, slotStats, asm.DWord),
		asm.LoadMem(asm.R2, asm.R1, off, asm.DWord),
		add,
		asm.StoreMem(asm.R1, off, asm.R2, asm.DWord),
	)
}

// ret emits "return verdict".
func (b *builder) ret(verdict int32) {
	b.emit(asm.Mov.Imm(asm.R0, verdict), asm.Return())
}

// passWith counts reason and returns XDP_PASS; every early exit of the
// classifiers goes through one of these blocks.
func (b *builder) passWith(name string, reason uint32) {
	b.label(name)
	b.count(reason)
	b.ret(xdpPass)
}

// loadXDP verifies and loads an XDP program, keeping the verifier log in
// the error so that a rejected program says why.
func loadXDP(name string, insns asm.Instructions) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.XDP,
		Instructions: insns,
		License:      license,
	})
	if err != nil {
		return nil, fmt.Errorf("load xdp program %s: %w", name, err)
	}
	return prog, nil
}
