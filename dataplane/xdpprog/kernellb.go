package xdpprog

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// KernelLB counter slots.
const (
	klbTotal = iota
	klbDR
	klbTunnel
	klbNewFlows
	klbPassNotService
	klbDropNoReal
	klbDropAdjustFailed
	klbDropNoEgress
	klbCounters
)

// KernelLBStats are the kernel load balancer's counters summed over CPUs.
// Every frame is counted in Total and in one of DR, Tunnel,
// PassNotService, DropNoReal, DropAdjustFailed; DropNoEgress counts the
// forwarded ones the egress device map refused, NewFlows the flow-table
// insertions.
type KernelLBStats struct {
	Total            uint64
	DR               uint64 // MAC rewritten and redirected
	Tunnel           uint64 // IPIP-encapsulated and redirected
	NewFlows         uint64 // flows scheduled and entered in the flow table
	PassNotService   uint64 // not an unfragmented option-less IPv4 TCP/UDP frame to a service: left to the kernel
	DropNoReal       uint64 // the service has no real server
	DropAdjustFailed uint64 // bpf_xdp_adjust_head refused the IPIP header's room
	DropNoEgress     uint64 // no egress device in the device map
}

// KernelLBOptions configure a KernelLB.
type KernelLBOptions struct {
	// EgressIfindex is where forwarded frames leave (XDP_REDIRECT through
	// a DEVMAP), in the network namespace of the thread that calls
	// LoadKernelLB; EgressMAC is its MAC, the frames' new source.
	EgressIfindex int
	EgressMAC     [6]byte
	// TunnelSource is the outer source address of IPIP frames.
	TunnelSource netip.Addr
	// MaxFlows sizes the LRU flow table.
	MaxFlows int
}

// MaxKernelLBReals bounds the real servers of all services of a KernelLB
// together, and MaxKernelLBServices its services.
const (
	MaxKernelLBReals    = 1024
	MaxKernelLBServices = 256
	maxKernelLBFlows    = 1 << 25
)

// KernelLBReal is a real server as the kernel load balancer forwards to
// it: the next hop's MAC and, for IPIP, the server's address.
type KernelLBReal struct {
	MAC    [6]byte
	Addr   netip.Addr
	Tunnel bool // IPIP (VS/TUN); else MAC rewrite (VS/DR)
}

// kernelLBRealEntry is a reals map value exactly as the program reads it.
type kernelLBRealEntry struct {
	MAC    [6]byte
	Tunnel uint8
	_      uint8
	Addr   [4]byte
}

// kernelLBService is a services map value: the service's real servers
// are reals[Base : Base+Count].
type kernelLBService struct {
	Count uint32
	Base  uint32
}

// KernelLB is an in-kernel XDP layer-4 load balancer in the manner of
// Katran, for comparison with afvs: services are (address, protocol,
// port) keys; the first frame of a flow (its 5-tuple) picks a real server
// at random among the service's and enters it in an LRU hash table, which
// later frames of the flow follow; a frame for a DR real server has its
// MACs rewritten, one for a tunnel real server is wrapped in an outer
// IPv4 header (IPIP) in room made with bpf_xdp_adjust_head; both leave
// through XDP_REDIRECT to the egress device of a DEVMAP. Anything else
// goes to the kernel. There is no health checking, connection state or
// weight: it is the data path alone.
type KernelLB struct {
	loaded
	services, reals, flows, egress *ebpf.Map
	nextReal                       uint32
}

// Stack slots of the kernel load balancer, below the builder's.
const (
	slotFlow = -64 // 16 bytes: the flow key
	slotReal = -72 // 4 bytes: the real server's index
)

// LoadKernelLB loads the program and its maps.
func LoadKernelLB(o KernelLBOptions) (*KernelLB, error) {
	if o.EgressIfindex <= 0 {
		return nil, fmt.Errorf("load kernel lb: egress ifindex %d: must be positive", o.EgressIfindex)
	}
	if !o.TunnelSource.Is4() {
		return nil, fmt.Errorf("load kernel lb: tunnel source %s: must be an IPv4 address", o.TunnelSource)
	}
	if o.MaxFlows < 1 || o.MaxFlows > maxKernelLBFlows {
		return nil, fmt.Errorf("load kernel lb: max flows %d: must be from 1 to %d", o.MaxFlows, maxKernelLBFlows)
	}
	k := &KernelLB{}
	if err := k.load(o); err != nil {
		k.Close()
		return nil, fmt.Errorf("load kernel lb: %w", err)
	}
	return k, nil
}

func (k *KernelLB) load(o KernelLBOptions) error {
	var err error
	if k.stats, err = newCounters("afvs_klb_st", klbCounters); err != nil {
		return err
	}
	specs := []struct {
		m    **ebpf.Map
		spec ebpf.MapSpec
	}{
		{&k.services, ebpf.MapSpec{Name: "afvs_klb_svcs", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: MaxKernelLBServices}},
		{&k.reals, ebpf.MapSpec{Name: "afvs_klb_reals", Type: ebpf.Array, KeySize: 4, ValueSize: 12, MaxEntries: MaxKernelLBReals}},
		{&k.flows, ebpf.MapSpec{Name: "afvs_klb_flows", Type: ebpf.LRUHash, KeySize: 16, ValueSize: 4, MaxEntries: uint32(o.MaxFlows)}},
		{&k.egress, ebpf.MapSpec{Name: "afvs_klb_tx", Type: ebpf.DevMap, KeySize: 4, ValueSize: 4, MaxEntries: 1}},
	}
	for _, s := range specs {
		if *s.m, err = ebpf.NewMap(&s.spec); err != nil {
			return fmt.Errorf("create map %s: %w", s.spec.Name, err)
		}
	}
	if err := k.egress.Put(uint32(0), uint32(o.EgressIfindex)); err != nil {
		return fmt.Errorf("egress ifindex %d: %w", o.EgressIfindex, err)
	}
	insns, err := kernelLBProgram(k, o)
	if err != nil {
		return err
	}
	k.prog, err = loadXDP("afvs_kernel_lb", insns)
	return err
}

// native returns what a load of size n (2 or 4) from packet memory yields
// on this host for the bytes b, so the program can store wire bytes with
// an immediate.
func native(b []byte) int64 {
	switch len(b) {
	case 2:
		return int64(int16(binary.NativeEndian.Uint16(b)))
	case 4:
		return int64(int32(binary.NativeEndian.Uint32(b)))
	}
	panic("native: size must be 2 or 4")
}

// kernelLBProgram emits the load balancer. Registers: R6 ctx, R7 data,
// R8 data_end, R9 the service's value, then the real server's. The map
// helpers it calls leave packet pointers valid; bpf_xdp_adjust_head does
// not, and the tunnel path reloads them.
func kernelLBProgram(k *KernelLB, o KernelLBOptions) (asm.Instructions, error) {
	const (
		ipOff  = ethLen
		l4Off  = ethLen + ipv4MinLen
		ipSrc  = ipOff + 12
		ipDst  = ipOff + ipOffDst
		ipipSz = ipv4MinLen
	)
	src := o.TunnelSource.As4()
	b := newBuilder()
	b.frameStart(k.stats.m, xdpPass, klbTotal, "pass")
	b.emit(
		asm.JNE.Imm(asm.R3, be16(0x0800), "pass"),
		// IPv4 with no options (IHL 5), unfragmented, TCP or UDP, with
		// its ports in the frame.
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, l4Off+4),
		asm.JGT.Reg(asm.R2, asm.R8, "pass"),
		asm.LoadMem(asm.R3, asm.R7, ipOff+ipOffVerIHL, asm.Byte),
		asm.JNE.Imm(asm.R3, 0x45, "pass"),
		asm.LoadMem(asm.R3, asm.R7, ipOff+ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R3, be16(0x3fff), "pass"),
		asm.LoadMem(asm.R4, asm.R7, ipOff+ipOffProto, asm.Byte),
		asm.JEq.Imm(asm.R4, ipProtoTCP, "l4"),
		asm.JNE.Imm(asm.R4, ipProtoUDP, "pass"),
	)
	b.label("l4")
	b.emit(
		// The service key: address, port (network order), protocol, 0.
		asm.LoadMem(asm.R1, asm.R7, ipDst, asm.Word),
		asm.StoreMem(asm.RFP, slotKey, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, l4Off+l4OffDstPort, asm.Half),
		asm.StoreMem(asm.RFP, slotKey+4, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, slotKey+6, asm.R4, asm.Byte),
		asm.StoreImm(asm.RFP, slotKey+7, 0, asm.Byte),
		asm.LoadMapPtr(asm.R1, k.services.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R9, asm.R0),
		// The flow key: source, destination, both ports, protocol, 0 0 0.
		asm.LoadMem(asm.R1, asm.R7, ipSrc, asm.Word),
		asm.StoreMem(asm.RFP, slotFlow, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, ipDst, asm.Word),
		asm.StoreMem(asm.RFP, slotFlow+4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, l4Off, asm.Word),
		asm.StoreMem(asm.RFP, slotFlow+8, asm.R1, asm.Word),
		asm.StoreImm(asm.RFP, slotFlow+12, 0, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, ipOff+ipOffProto, asm.Byte),
		asm.StoreMem(asm.RFP, slotFlow+12, asm.R1, asm.Byte),
		asm.LoadMapPtr(asm.R1, k.flows.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotFlow),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "new_flow"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, slotReal, asm.R1, asm.Word),
		asm.Ja.Label("have_real"),
	)
	// A new flow: a random real server of the service, remembered.
	b.label("new_flow")
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word), // count
		asm.JEq.Imm(asm.R1, 0, "no_real"),
		asm.FnGetPrandomU32.Call(),
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word),
		asm.Mod.Reg32(asm.R0, asm.R1),
		asm.LoadMem(asm.R1, asm.R9, 4, asm.Word), // base
		asm.Add.Reg32(asm.R0, asm.R1),
		asm.StoreMem(asm.RFP, slotReal, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, k.flows.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotFlow),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, slotReal),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	)
	b.count(klbNewFlows)
	b.label("have_real")
	b.emit(
		asm.LoadMapPtr(asm.R1, k.reals.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotReal),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "no_real"),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R1, asm.R9, 6, asm.Byte),
		asm.JNE.Imm(asm.R1, 0, "tunnel"),
	)
	// VS/DR: the real server's MAC as destination, ours as source.
	b.macs(o.EgressMAC)
	b.count(klbDR)
	b.emit(asm.Ja.Label("redirect"))

	// VS/TUN: room for an outer IPv4 header in front of the packet.
	b.label("tunnel")
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, -ipipSz),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "adjust_failed"),
		asm.LoadMem(asm.R7, asm.R6, xdpMdData, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, xdpMdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+ipipSz+ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "adjust_failed"),
	)
	b.macs(o.EgressMAC)
	const in = ethLen + ipipSz // the inner IPv4 header
	b.emit(
		asm.StoreImm(asm.R7, 12, int64(be16(0x0800)), asm.Half),
		asm.StoreImm(asm.R7, ipOff, 0x45, asm.Byte),
		// TOS and DF come from the inner header, as IPVS's tunnel
		// transmitter copies them.
		asm.LoadMem(asm.R1, asm.R7, in+1, asm.Byte),
		asm.StoreMem(asm.R7, ipOff+1, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.R7, in+2, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.Add.Imm(asm.R1, ipipSz),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R7, ipOff+2, asm.R1, asm.Half),
		asm.StoreImm(asm.R7, ipOff+4, 0, asm.Half), // id
		asm.LoadMem(asm.R1, asm.R7, in+ipOffFrag, asm.Half),
		asm.And.Imm(asm.R1, be16(0x4000)),
		asm.StoreMem(asm.R7, ipOff+ipOffFrag, asm.R1, asm.Half),
		asm.StoreImm(asm.R7, ipOff+8, 64, asm.Byte),
		asm.StoreImm(asm.R7, ipOff+ipOffProto, ipProtoIPIP, asm.Byte),
		asm.StoreImm(asm.R7, ipOff+10, 0, asm.Half),
		asm.StoreImm(asm.R7, ipSrc, native(src[:]), asm.Word),
		asm.LoadMem(asm.R1, asm.R9, 8, asm.Word),
		asm.StoreMem(asm.R7, ipDst, asm.R1, asm.Word),
		// The header checksum: the ones'-complement sum of its ten
		// 16-bit words is the same in either byte order, so the words
		// are summed as loaded and the result stored as it is.
		asm.Mov.Imm(asm.R3, 0),
	)
	for off := int16(0); off < ipv4MinLen; off += 2 {
		b.emit(
			asm.LoadMem(asm.R1, asm.R7, ipOff+off, asm.Half),
			asm.Add.Reg(asm.R3, asm.R1),
		)
	}
	for range 2 {
		b.emit(
			asm.Mov.Reg(asm.R1, asm.R3),
			asm.RSh.Imm(asm.R1, 16),
			asm.And.Imm(asm.R3, 0xffff),
			asm.Add.Reg(asm.R3, asm.R1),
		)
	}
	b.emit(
		asm.Xor.Imm(asm.R3, 0xffff),
		asm.StoreMem(asm.R7, ipOff+10, asm.R3, asm.Half),
	)
	b.count(klbTunnel)

	b.label("redirect")
	b.emit(
		asm.LoadMapPtr(asm.R1, k.egress.FD()),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Imm(asm.R3, xdpDrop), // the verdict if the map has no device
		asm.FnRedirectMap.Call(),
		asm.JEq.Imm(asm.R0, xdpRedirect, "redirected"),
	)
	b.count(klbDropNoEgress)
	b.ret(xdpDrop)
	b.label("redirected")
	b.ret(xdpRedirect)

	b.label("no_real")
	b.count(klbDropNoReal)
	b.ret(xdpDrop)
	b.label("adjust_failed")
	b.count(klbDropAdjustFailed)
	b.ret(xdpDrop)
	b.passWith("pass", klbPassNotService)
	return b.finish()
}

// macs writes the real server's MAC (in the map value at R9) as the
// frame's destination and mac as its source. It clobbers R1.
func (b *builder) macs(mac [6]byte) {
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word),
		asm.StoreMem(asm.R7, 0, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R9, 4, asm.Half),
		asm.StoreMem(asm.R7, 4, asm.R1, asm.Half),
		asm.StoreImm(asm.R7, 6, native(mac[0:4]), asm.Word),
		asm.StoreImm(asm.R7, 10, native(mac[4:6]), asm.Half),
	)
}

// SetService puts service key in force with the given real servers, in
// fresh slots of the reals map (a KernelLB holds MaxKernelLBReals over
// its lifetime). Flows already in the flow table keep their real server.
func (k *KernelLB) SetService(key ServiceKey, reals []KernelLBReal) error {
	if !key.Addr.Is4() || (key.Proto != ipProtoTCP && key.Proto != ipProtoUDP) || key.Port == 0 {
		return fmt.Errorf("kernel lb service %s: must be an IPv4 address, tcp or udp, and a port", key)
	}
	if len(reals) == 0 {
		return fmt.Errorf("kernel lb service %s: needs at least one real server", key)
	}
	if int(k.nextReal)+len(reals) > MaxKernelLBReals {
		return fmt.Errorf("kernel lb service %s: %d more real servers: more than the %d slots left", key, len(reals), MaxKernelLBReals-int(k.nextReal))
	}
	base := k.nextReal
	for i, r := range reals {
		e := kernelLBRealEntry{MAC: r.MAC}
		if r.Tunnel {
			if !r.Addr.Is4() {
				return fmt.Errorf("kernel lb service %s: real server %d: a tunnel needs an IPv4 address, not %s", key, i, r.Addr)
			}
			e.Tunnel = 1
			e.Addr = r.Addr.As4()
		}
		if err := k.reals.Put(base+uint32(i), e); err != nil {
			return fmt.Errorf("kernel lb service %s: real server %d: %w", key, i, err)
		}
	}
	var sk serviceEntry
	sk.Addr = key.Addr.As4()
	binary.BigEndian.PutUint16(sk.Port[:], key.Port)
	sk.Proto = key.Proto
	if err := k.services.Put(sk, kernelLBService{Count: uint32(len(reals)), Base: base}); err != nil {
		return fmt.Errorf("kernel lb service %s: %w", key, err)
	}
	k.nextReal += uint32(len(reals))
	return nil
}

// Flows counts the flow table's entries.
func (k *KernelLB) Flows() (int, error) {
	var key [16]byte
	var val uint32
	n := 0
	it := k.flows.Iterate()
	for it.Next(&key, &val) {
		n++
	}
	if err := it.Err(); err != nil {
		return n, fmt.Errorf("kernel lb flows: %w", err)
	}
	return n, nil
}

// Stats reads the counters summed over CPUs.
func (k *KernelLB) Stats() (KernelLBStats, error) {
	v, err := k.stats.read()
	if err != nil {
		return KernelLBStats{}, fmt.Errorf("kernel lb stats: %w", err)
	}
	return KernelLBStats{
		Total: v[klbTotal], DR: v[klbDR], Tunnel: v[klbTunnel], NewFlows: v[klbNewFlows],
		PassNotService: v[klbPassNotService], DropNoReal: v[klbDropNoReal],
		DropAdjustFailed: v[klbDropAdjustFailed], DropNoEgress: v[klbDropNoEgress],
	}, nil
}

// Close unloads the program and its maps; attachments stay until closed.
func (k *KernelLB) Close() error { return k.close(k.services, k.reals, k.flows, k.egress) }
