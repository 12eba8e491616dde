package xdpprog

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ICMPv6 fields and types the steering program reads.
const (
	icmp6ErrorMax  = 4      // destination unreachable 1, packet too big 2, time exceeded 3, parameter problem 4
	frag6OffMask   = 0xfff8 // the fragment offset of a fragment header, host order
	ext6MinLen     = 8
	quotedPorts6At = 0
)

// steeringICMP6 emits the "icmp6_quote" block of the steering program,
// entered from steernat6.go's "icmp6" block (an ICMPv6 message not taken
// as a NAT real server's error) with R9 at the ICMPv6 header and
// slotSvc6's address holding the packet's destination. It takes the errors ip_vs_in_icmp_v6
// relates to a connection - destination unreachable, packet too big, time
// exceeded, parameter problem - when they quote an IPv6 packet whose
// source is the message's destination (the VIP the error was sent back
// to) and which is, after at most maxExt6 extension headers (hop-by-hop
// first only, routing, destination options, and a fragment header of
// offset 0), TCP or UDP whose source address, protocol and port (or port
// 0) is an IPv6 service: then it goes on as a matched frame (owner MAC,
// socket), counted as ICMPErrors. Each extension header's first 8 bytes
// and the four bytes of ports must be in the frame. Everything else
// passes: informational messages (neighbour discovery, MLD, echo) and
// other types as not_l4, like a quote that is not IPv6, too many or
// misplaced extension headers, a non-first fragment or another upper
// layer; a quote of no service as no_service; a cut one as truncated.
func steeringICMP6(b *builder, lookup6 func(), svcGate *ebpf.Map) {
	b.label("icmp6_quote")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, icmpLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, 0, "not_l4"),
		asm.JGT.Imm(asm.R2, icmp6ErrorMax, "not_l4"),
		asm.Add.Imm(asm.R9, icmpLen), // R9: the quoted IPv6 header
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, ipv6Len),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R9, 0, asm.Byte),
		asm.RSh.Imm(asm.R3, 4),
		asm.JNE.Imm(asm.R3, 6, "not_l4"),
	)
	// The quoted source must be the message's destination, which the
	// key's address already holds.
	for i := int16(0); i < 16; i += 4 {
		b.emit(
			asm.LoadMem(asm.R4, asm.R9, ip6OffSrc+i, asm.Word),
			asm.LoadMem(asm.R3, asm.RFP, slotSvc6+i, asm.Word),
			asm.JNE.Reg(asm.R4, asm.R3, "no_service"),
		)
	}
	b.emit(
		asm.LoadMem(asm.R5, asm.R9, ip6OffNext, asm.Byte),
		asm.Add.Imm(asm.R9, ipv6Len),
	)
	for n := range maxExt6 {
		ext, frag, next := b.fresh("q6_ext"), b.fresh("q6_frag"), b.fresh("q6_next")
		b.emit(
			asm.JEq.Imm(asm.R5, ipProtoTCP, "icmp6_l4"),
			asm.JEq.Imm(asm.R5, ipProtoUDP, "icmp6_l4"),
		)
		if n == 0 {
			b.emit(asm.JEq.Imm(asm.R5, ipProtoHopByHop, ext))
		}
		b.emit(
			asm.JEq.Imm(asm.R5, ipProtoRouting, ext),
			asm.JEq.Imm(asm.R5, ipProtoDestOpts, ext),
			asm.JNE.Imm(asm.R5, ipProtoFrag6, "not_l4"),
		)
		b.label(frag)
		b.emit(
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Add.Imm(asm.R2, ext6MinLen),
			asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
			asm.LoadMem(asm.R4, asm.R9, 2, asm.Half),
			asm.JSet.Imm(asm.R4, be16(frag6OffMask), "not_l4"),
			asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
			asm.Add.Imm(asm.R9, ext6MinLen),
			asm.Ja.Label(next),
		)
		b.label(ext)
		b.emit(
			asm.Mov.Reg(asm.R2, asm.R9),
			asm.Add.Imm(asm.R2, ext6MinLen),
			asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
			asm.LoadMem(asm.R5, asm.R9, 0, asm.Byte),
			asm.LoadMem(asm.R4, asm.R9, 1, asm.Byte),
			asm.Add.Imm(asm.R4, 1),
			asm.LSh.Imm(asm.R4, 3),
			asm.Add.Reg(asm.R9, asm.R4),
		)
		b.label(next)
	}
	b.emit(
		asm.JEq.Imm(asm.R5, ipProtoTCP, "icmp6_l4"),
		asm.JNE.Imm(asm.R5, ipProtoUDP, "not_l4"),
	)
	b.label("icmp6_l4")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, quotedPortsLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		// Key: the quoted source (already there), its source port, the
		// protocol, flags 0.
		asm.LoadMem(asm.R4, asm.R9, quotedPorts6At, asm.Half),
		asm.StoreMem(asm.RFP, slotSvc6+16, asm.R4, asm.Half),
		asm.StoreMem(asm.RFP, slotSvc6+18, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotSvc6+19, 0, asm.Byte),
	)
	// Each lookup only while the service gate has its port's bit
	// (servicegate.go).
	matched, anyPort := b.fresh("icmp6_match"), b.fresh("icmp6_any")
	b.gatedLookups(svcGate, gate6, portsDst, slotSvc6, 16, asm.R5, asm.R4, lookup6, matched, anyPort, "no_service", asm.JEq.Imm(asm.R0, 0, "no_service"))
	b.label(matched)
	b.count(steerICMPErrors)
	b.emit(
		// The source is a router's: the blocklist skips a key so flagged.
		asm.StoreImm(asm.RFP, slotSvc6+19, flagICMPError, asm.Byte),
		asm.Ja.Label("match6"),
	)
}
