package xdpprog

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// IPv6 steering. An IPv6 frame whose upper-layer header is TCP or UDP,
// after at most four extension headers (hop-by-hop first only, routing,
// destination options), is looked up in a second hash map, keyed by the
// 16-byte destination address, the destination port and the protocol
// (exact port first, then port 0 for an all-ports service), and a match
// for an owner MAC is redirected into the queue's socket, as are a VS/NAT
// real server's replies and ICMPv6 errors (steernat6.go) and an ICMPv6
// error about a service's reply (steericmp6.go). A frame whose walk meets
// a Fragment header is matched by the fragment header's next header and
// the destination address alone, in the any-service key of that address
// and protocol (a non-first fragment carries no ports), and redirected so
// that the worker drops and counts it as ipv6_fragment, as the parser
// does, rather than to the director's kernel, which would answer it
// itself if it held the VIP. Every other IPv6 frame goes to the
// kernel: every other ICMPv6 message (neighbour discovery, MLD, echo),
// fragments to no service, other next headers, and TCP or UDP to no IPv6
// service; so neighbour discovery for the VIP and the director's own
// addresses works through a director as without it. A matched frame of a
// local-node flow goes to the kernel (localpass6.go); any other matched
// frame's source is looked up in the IPv6 blocklist by its prefix
// (blocklist6.go).

// serviceEntry6 is the IPv6 services map key as the program builds it on
// its stack: 20 bytes, address and port in network order.
type serviceEntry6 struct {
	Addr  [16]byte
	Port  [2]byte
	Proto uint8
	Flags uint8 // 0, or flagSource or flagLocal (steernat6.go)
}

// slotSvc6 holds the IPv6 services key (20 of its 24 bytes), below the
// slots the IPv4 path uses.
const slotSvc6 = -104

// IPv6 extension headers the program walks to reach TCP or UDP, and how
// many at most: the userspace parser's limit (header.MaxIPv6ExtHeaders).
const (
	ipProtoHopByHop = 0
	ipProtoRouting  = 43
	ipProtoDestOpts = 60
	ipProtoFragment = 44
	maxExt6         = 4
)

func newServices6Map(maxServices int) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_services6",
		Type:       ebpf.Hash,
		KeySize:    20,
		ValueSize:  4,
		MaxEntries: uint32(2 * maxServices), // with a NAT real server's ICMPv6 keys
	})
	if err != nil {
		return nil, fmt.Errorf("create IPv6 services map for %d services: %w", maxServices, err)
	}
	return m, nil
}

// entry6 is the IPv6 services map key of k, the i-th key SetServices got:
// a service's, a VS/NAT real server's (flagSource) or a director
// address's (flagLocal), as steernat6.go reads them.
func entry6(i int, k ServiceKey) (serviceEntry6, error) {
	switch {
	case !k.Addr.Is6() || k.Addr.Zone() != "":
		return serviceEntry6{}, fmt.Errorf("set services: service %d (%s): address must be IPv4 or IPv6 without a zone", i, k)
	case k.Local:
		return serviceEntry6{Addr: k.Addr.As16(), Flags: flagLocal}, nil
	case k.Proto != ipProtoTCP && k.Proto != ipProtoUDP:
		return serviceEntry6{}, fmt.Errorf("set services: service %d (%s): protocol %d must be 6 (tcp) or 17 (udp)", i, k, k.Proto)
	}
	e := serviceEntry6{Addr: k.Addr.As16(), Port: [2]byte{byte(k.Port >> 8), byte(k.Port)}, Proto: k.Proto}
	if k.Source {
		e.Flags = flagSource
	}
	return e, nil
}

// ownerCheck jumps to ok when the frame's destination MAC is an owner MAC,
// and to other_mac when not: the one value of the owners array holds
// MaxOwnerMACs slots of {mac[6], used, pad}. The frame's MAC is compared as
// a word and a half-word loaded the same way from both sides, so no byte
// order is involved.
//
// The value is read through its address, which the loader puts into the
// instruction (as for a global variable), not looked up: the array has
// one entry. It clobbers R0 and R2-R4.
func ownerCheck(b *builder, owners *ebpf.Map, ok string) {
	b.emit(
		asm.LoadMapValue(asm.R0, owners.FD(), 0),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R7, 4, asm.Half),
	)
	for i := range MaxOwnerMACs {
		next := b.fresh("owner_next")
		off := int16(i * 8)
		b.emit(
			asm.LoadMem(asm.R4, asm.R0, off+6, asm.Byte),
			asm.JEq.Imm(asm.R4, 0, next),
			asm.LoadMem(asm.R4, asm.R0, off, asm.Word),
			asm.JNE.Reg(asm.R4, asm.R2, next),
			asm.LoadMem(asm.R4, asm.R0, off+4, asm.Half),
			asm.JEq.Reg(asm.R4, asm.R3, ok),
		)
		b.label(next)
	}
	b.emit(asm.Ja.Label("other_mac"))
}

// steeringIPv6 emits the "ipv6" block: R9 points at the IPv6 header.
func steeringIPv6(b *builder, services6, owners *ebpf.Map, local localMaps, gate *ebpf.Map, block6 blockMaps6, svcGate *ebpf.Map) {
	lookup6 := func() {
		b.emit(
			asm.LoadMapPtr(asm.R1, services6.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, slotSvc6),
			asm.FnMapLookupElem.Call(),
		)
	}
	b.label("ipv6")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, ipv6Len),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R9, 0, asm.Byte),
		asm.RSh.Imm(asm.R3, 4),
		asm.JNE.Imm(asm.R3, 6, "bad_header"),
	)
	// Key: {destination address, port, protocol, 0}; the address first,
	// while R9 still points at the fixed header.
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R4, asm.R9, ip6OffDst+i, asm.Word),
			asm.StoreMem(asm.RFP, slotSvc6+i, asm.R4, asm.Word),
		)
	}
	copySrc6(b) // the NAT source key's and the blocklist's (steernat6.go)
	b.emit(
		// The payload length, for a local-node flow's bytes.
		asm.LoadMem(asm.R4, asm.R9, 4, asm.Half),
		asm.StoreMem(asm.RFP, slotLocalLen, asm.R4, asm.Half),
	)
	b.emit(
		asm.LoadMem(asm.R5, asm.R9, ip6OffNext, asm.Byte),
		asm.Add.Imm(asm.R9, ipv6Len),
	)
	// Walk up to maxExt6 extension headers, unrolled: hop-by-hop only
	// first, then routing and destination options, each (len+1)*8
	// bytes, whose first 8 bytes must be in the frame. A Fragment header
	// ends the walk (frag6), as it ends the parser's; anything else is
	// the kernel's.
	for n := range maxExt6 {
		ext := b.fresh("ext6")
		b.emit(
			asm.JEq.Imm(asm.R5, ipProtoTCP, "l4_6"),
			asm.JEq.Imm(asm.R5, ipProtoUDP, "l4_6"),
			asm.JEq.Imm(asm.R5, ipProtoICMPv6, "icmp6"), // steericmp6.go
			asm.JEq.Imm(asm.R5, ipProtoFragment, "frag6"),
		)
		if n == 0 {
			b.emit(asm.JEq.Imm(asm.R5, ipProtoHopByHop, ext))
		}
		b.emit(
			asm.JEq.Imm(asm.R5, ipProtoRouting, ext),
			asm.JNE.Imm(asm.R5, ipProtoDestOpts, "not_l4"),
		)
		b.label(ext)
		b.emit(
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Add.Imm(asm.R2, 8),
			asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
			asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
			asm.LoadMem(asm.R4, asm.R9, 1, asm.Byte),
			asm.Add.Imm(asm.R4, 1),
			asm.LSh.Imm(asm.R4, 3),
			asm.Add.Reg(asm.R9, asm.R4),
		)
	}
	b.emit(
		asm.JEq.Imm(asm.R5, ipProtoTCP, "l4_6"),
		asm.JEq.Imm(asm.R5, ipProtoICMPv6, "icmp6"),
		asm.JEq.Imm(asm.R5, ipProtoFragment, "frag6"),
		asm.JNE.Imm(asm.R5, ipProtoUDP, "not_l4"),
	)
	b.label("l4_6")
	b.emit(
		asm.StoreMem(asm.RFP, slotSvc6+18, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotSvc6+19, 0, asm.Byte),
		// Transport header present: 20 bytes for TCP, 8 for UDP.
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, udpLen),
		asm.JNE.Imm(asm.R5, ipProtoTCP, "l4_6_len"),
		asm.Add.Imm(asm.R2, tcpMinLen-udpLen),
	)
	b.label("l4_6_len")
	b.emit(
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R4, asm.R9, l4OffDstPort, asm.Half),
		asm.StoreMem(asm.RFP, slotSvc6+16, asm.R4, asm.Half),
	)
	// Exact port first, then the all-ports service, each only while the
	// service gate has its port's bit (servicegate.go).
	b.gatedLookups(svcGate, gate6, portsDst, slotSvc6, 16, asm.R5, asm.R4, lookup6, "match6", "svc6_any", "nosvc6", asm.JEq.Imm(asm.R0, 0, "nosvc6"))
	b.label("match6")
	ownerCheck(b, owners, "owner6")
	b.label("owner6")
	localPass6(b, local, "block6") // localpass6.go
	b.label("block6")
	b.dropBlocked6(gate, block6, steerBlocked)
	b.emit(asm.Ja.Label("xsk"))

	// A fragment (R9 at its Fragment header): the any-service key of the
	// destination address and the protocol the fragment header names.
	// It has no ports, so no local-node flow or NAT reply is looked up:
	// it goes past the owner check and the blocklist to the worker, which
	// drops it.
	b.label("frag6")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, 8),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
		asm.StoreImm(asm.RFP, slotSvc6+16, 0, asm.Half),
		asm.StoreMem(asm.RFP, slotSvc6+18, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotSvc6+19, flagAnyService, asm.Byte),
	)
	lookup6()
	b.emit(asm.JEq.Imm(asm.R0, 0, "no_service"))
	b.count(steerFragments)
	ownerCheck(b, owners, "block6")
	steeringNAT6(b, services6, svcGate)
	steeringICMP6(b, lookup6, svcGate)
}
