package xdpprog

import (
	"fmt"
	"net/netip"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// IPv6 local-node flows: localpass.go's flow map for IPv6 connections, in
// a second hash map keyed by the 16-byte addresses. A matched IPv6 frame
// for an owner MAC whose flow is in the map goes to the kernel (XDP_PASS,
// PassLocal) with its use recorded as for IPv4: frames, IP-layer bytes
// (40 plus the payload length) and the OR of its TCP flags. The gate and
// MaxLocalFlows are the IPv4 map's; the two maps are bounded apart.

// localEntry6 is the IPv6 flows map key as the program builds it on its
// stack: addresses and ports in network order, then the protocol and
// padding.
type localEntry6 struct {
	Src, Dst         [16]byte
	SrcPort, DstPort [2]byte
	Proto            uint8
	_                [3]byte
}

// slotLocal6 holds the IPv6 flow key (40 bytes).
const slotLocal6 = -176

func newLocal6Map() (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_local6",
		Type:       ebpf.Hash,
		KeySize:    40,
		ValueSize:  24,
		MaxEntries: MaxLocalFlows,
		Flags:      unix.BPF_F_NO_PREALLOC,
	})
	if err != nil {
		return nil, fmt.Errorf("create IPv6 local-node flow map for %d flows: %w", MaxLocalFlows, err)
	}
	return m, nil
}

// localPass6 is localPass for a matched IPv6 frame: R9 at its TCP or UDP
// header (present), its source address at slotSrc6, its destination
// address and protocol in the service key at slotSvc6, its payload length
// at slotLocalLen. A frame of a flow in the map is passed; any other goes
// on at next, as does every frame whose service key has flags (a VS/NAT
// reply, an ICMPv6 error).
func localPass6(b *builder, l localMaps, next string) {
	b.localGate(l, next)
	b.emit(
		// A key with flags (a NAT reply's, an ICMPv6 error's) is no
		// flow of the frame's own: the worker gets it, as on IPv4.
		asm.LoadMem(asm.R1, asm.RFP, slotSvc6+19, asm.Byte),
		asm.JNE.Imm(asm.R1, 0, next),
	)
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R1, asm.RFP, slotSrc6+i, asm.Word),
			asm.StoreMem(asm.RFP, slotLocal6+i, asm.R1, asm.Word),
			asm.LoadMem(asm.R1, asm.RFP, slotSvc6+i, asm.Word),
			asm.StoreMem(asm.RFP, slotLocal6+16+i, asm.R1, asm.Word),
		)
	}
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word), // both ports
		asm.StoreMem(asm.RFP, slotLocal6+32, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotSvc6+18, asm.Byte),
		asm.StoreMem(asm.RFP, slotLocal6+36, asm.R1, asm.Byte),
		asm.StoreImm(asm.RFP, slotLocal6+37, 0, asm.Byte),
		asm.StoreImm(asm.RFP, slotLocal6+38, 0, asm.Half),
		asm.LoadMapPtr(asm.R1, l.flows6.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotLocal6),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, next),
	)
	b.localUse(slotLocal6+36, ipv6Len, "local6_done")
}

// is6 reports whether f is an IPv6 flow (both addresses IPv6, neither
// IPv4-mapped); localKey refuses a flow of mixed families.
func is6(f LocalFlow) bool {
	return f.Src.Is6() && !f.Src.Is4In6() && f.Dst.Is6() && !f.Dst.Is4In6()
}

func localKey6(f LocalFlow) (localEntry6, error) {
	if f.Src.Zone() != "" || f.Dst.Zone() != "" {
		return localEntry6{}, fmt.Errorf("local flow %s: addresses must have no zone", f)
	}
	if f.Proto != ipProtoTCP && f.Proto != ipProtoUDP {
		return localEntry6{}, fmt.Errorf("local flow %s: protocol %d must be 6 (tcp) or 17 (udp)", f, f.Proto)
	}
	return localEntry6{
		Src: f.Src.As16(), Dst: f.Dst.As16(),
		SrcPort: [2]byte{byte(f.SrcPort >> 8), byte(f.SrcPort)},
		DstPort: [2]byte{byte(f.DstPort >> 8), byte(f.DstPort)},
		Proto:   f.Proto,
	}, nil
}

func (e localEntry6) flow() LocalFlow {
	return LocalFlow{
		Src: netip.AddrFrom16(e.Src), Dst: netip.AddrFrom16(e.Dst),
		SrcPort: uint16(e.SrcPort[0])<<8 | uint16(e.SrcPort[1]),
		DstPort: uint16(e.DstPort[0])<<8 | uint16(e.DstPort[1]),
		Proto:   e.Proto,
	}
}

// localKeys6 holds the keys allowLocal6 and forgetLocal6 pass to bpf(2).
var localKeys6 = sync.Pool{New: func() any { return new(localEntry6) }}

// allowLocal6 is AllowLocal for an IPv6 flow.
func (s *Steering) allowLocal6(f LocalFlow) error {
	k := localKeys6.Get().(*localEntry6)
	defer localKeys6.Put(k)
	var err error
	if *k, err = localKey6(f); err != nil {
		return err
	}
	return allowed(f, s.local.flows6.Update(unsafe.Pointer(k), unsafe.Pointer(&zeroUse), ebpf.UpdateNoExist))
}

// forgetLocal6 is ForgetLocal for an IPv6 flow.
func (s *Steering) forgetLocal6(f LocalFlow) error {
	k := localKeys6.Get().(*localEntry6)
	defer localKeys6.Put(k)
	var err error
	if *k, err = localKey6(f); err != nil {
		return err
	}
	return forgotten(f, s.local.flows6.Delete(unsafe.Pointer(k)))
}
