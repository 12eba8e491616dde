package xdpprog

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// IPv6 VS/NAT in the steering program: the IPv4 program's source keys in
// the IPv6 services map. A VS/NAT real server's key is {saddr, sport,
// proto, flagSource} (port 0: every port), with {saddr, 0, 58,
// flagSource} for its ICMPv6 errors; a director address's key is {addr,
// 0, 0, flagLocal}. An IPv6 TCP or UDP frame to no service whose source is
// a NAT real server's address, protocol and port, and an ICMPv6 error
// (type 1 to 127) from a NAT real server's address, are redirected like a
// service's frame unless they are addressed to one of the director's own
// addresses (its health checks' replies stay the kernel's); such an error
// is not looked up in the blocklist, as ICMP on IPv4 is not. An ICMPv6
// error that is not taken so may still be taken by its quote
// (steericmp6.go); informational ICMPv6, neighbour discovery and MLD among
// them, never is.

// slotSrc6 holds an IPv6 frame's source key (20 of its 24 bytes): its
// source address is copied there with the destination address, while the
// fixed header is at hand.
// The blocklist masks its address in place (blocklist6.go), after
// everything else has read it.
const slotSrc6 = -128

const (
	ipProtoICMPv6 = 58
	ip6OffSrc     = 8
)

// copySrc6 copies the source address of the IPv6 header R9 points at to
// slotSrc6.
func copySrc6(b *builder) {
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R4, asm.R9, ip6OffSrc+i, asm.Word),
			asm.StoreMem(asm.RFP, slotSrc6+i, asm.R4, asm.Word),
		)
	}
}

// setLocalKey6 turns the services key at slotSvc6, whose address is the
// frame's destination, into a director address's: {daddr, 0, 0,
// flagLocal}.
func setLocalKey6(b *builder) {
	b.emit(
		asm.StoreImm(asm.RFP, slotSvc6+16, 0, asm.Half),
		asm.StoreImm(asm.RFP, slotSvc6+18, 0, asm.Byte),
		asm.StoreImm(asm.RFP, slotSvc6+19, flagLocal, asm.Byte),
	)
}

// steeringNAT6 emits the blocks the IPv6 path jumps to: "nosvc6", a TCP
// or UDP frame (R9 at its transport header) to no IPv6 service; "icmp6",
// an ICMPv6 message (R9 at its header); and "source6", a frame from a
// NAT real server whose destination address is still at slotSvc6.
func steeringNAT6(b *builder, services6, svcGate *ebpf.Map) {
	lookup := func(slot int32) {
		b.emit(
			asm.LoadMapPtr(asm.R1, services6.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, slot),
			asm.FnMapLookupElem.Call(),
		)
	}
	// {saddr, sport, proto, flagSource}: exact port first, then every
	// port. The protocol is still in the service key.
	// Each lookup only while the service gate has the port's bit
	// (servicegate.go).
	b.label("nosvc6")
	b.emit(
		asm.LoadMem(asm.R4, asm.R9, 0, asm.Half),
		asm.StoreMem(asm.RFP, slotSrc6+16, asm.R4, asm.Half),
		asm.LoadMem(asm.R5, asm.RFP, slotSvc6+18, asm.Byte),
		asm.StoreMem(asm.RFP, slotSrc6+18, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotSrc6+19, flagSource, asm.Byte),
	)
	b.gatedLookups(svcGate, gate6, portsSrc, slotSrc6, 16, asm.R5, asm.R4, func() { lookup(slotSrc6) },
		"source6", "nosvc6_any", "no_service", asm.JEq.Imm(asm.R0, 0, "no_service"))
	b.emit(asm.Ja.Label("source6"))

	// ICMPv6 (R9 at its header): an error (type 1..127; its first four
	// bytes present) from a NAT real server's address, unless it is
	// addressed to the director. Informational messages pass; any other
	// error goes on to "icmp6_quote" (steericmp6.go), which may still
	// take it by its quote.
	b.label("icmp6")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, 4),
		asm.JGT.Reg(asm.R2, asm.R8, "icmp6_quote"),
		asm.LoadMem(asm.R4, asm.R9, 0, asm.Byte),
		asm.JEq.Imm(asm.R4, 0, "not_l4"),
		asm.JGE.Imm(asm.R4, 128, "not_l4"),
		asm.StoreImm(asm.RFP, slotSrc6+16, 0, asm.Half),
		asm.StoreImm(asm.RFP, slotSrc6+18, ipProtoICMPv6, asm.Byte),
		asm.StoreImm(asm.RFP, slotSrc6+19, flagSource, asm.Byte),
	)
	b.natGate(svcGate, gate6, "icmp6_quote")
	lookup(slotSrc6)
	b.emit(asm.JEq.Imm(asm.R0, 0, "icmp6_quote"))
	setLocalKey6(b)
	b.directorGate(svcGate, gate6, "icmp6_nat")
	lookup(slotSvc6)
	b.emit(asm.JNE.Imm(asm.R0, 0, "icmp6_quote"))
	b.label("icmp6_nat")
	b.emit(
		// An error about the server's connections, not a flow of its
		// own: the blocklist skips a key so flagged, as the IPv4 path
		// skips ICMP, so that a block of the server's prefix (as a
		// client) leaves its errors to the worker.
		asm.StoreImm(asm.RFP, slotSvc6+19, flagICMPError, asm.Byte),
		asm.Ja.Label("match6"),
	)

	// ...unless it is addressed to the director: {daddr, 0, 0, flagLocal}.
	b.label("source6")
	setLocalKey6(b)
	b.directorGate(svcGate, gate6, "match6")
	lookup(slotSvc6)
	b.emit(
		asm.JNE.Imm(asm.R0, 0, "no_service"),
		asm.Ja.Label("match6"),
	)
}
