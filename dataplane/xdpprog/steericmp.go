package xdpprog

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ICMP header fields and types the steering program reads.
const (
	icmpLen              = 8
	icmpDestUnreachable  = 3
	icmpSourceQuench     = 4
	icmpTimeExceeded     = 11
	l4OffSrcPort         = 0
	quotedPortsLen       = 4
	ipFragMFOffsetMask   = 0x3fff
	ipFragOffsetMaskHost = 0x1fff
	// flagICMPError marks the services key of a matched ICMP error once
	// its lookups are done.
	flagICMPError = 2
)

// steeringICMP emits the "icmp" block of the steering program, entered
// with R9 at the IPv4 header and R3 its length. It takes the ICMP errors
// ip_vs_in_icmp relates to a connection - destination unreachable, source
// quench, time exceeded - when the message is not itself a fragment and
// quotes an IPv4 TCP or UDP packet that is not a non-first fragment, whose
// source is the message's destination (the VIP the error was sent back
// to) and whose source address, protocol and port (or port 0) is a
// service: then it jumps to "match", counted as ICMPErrors. The quoted
// header must be whole, with the four bytes of ports after it. An error
// quoting the director's own IPIP packet (VS/TUN) is matched by the
// packet it carries (steeringICMPIPIP). Any other ICMP message passes as
// not_l4, or as no_service when the quoted packet belongs to no service,
// or as truncated.
func steeringICMP(b *builder, lookup func(), svcGate *ebpf.Map) {
	b.label("icmp")
	b.emit(
		// Not a fragment itself: only the kernel could reassemble it.
		asm.LoadMem(asm.R4, asm.R9, ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R4, be16(ipFragMFOffsetMask), "not_l4"),
		// R4: the message's destination, which the quoted source must be.
		asm.LoadMem(asm.R4, asm.R9, ipOffDst, asm.Word),
		asm.Add.Reg(asm.R9, asm.R3), // R9: ICMP header
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, icmpLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Byte),
		asm.JEq.Imm(asm.R2, icmpDestUnreachable, "icmp_error"),
		asm.JEq.Imm(asm.R2, icmpSourceQuench, "icmp_error"),
		asm.JNE.Imm(asm.R2, icmpTimeExceeded, "not_l4"),
	)
	b.label("icmp_error")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, icmpLen+ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.Add.Imm(asm.R9, icmpLen), // R9: quoted IPv4 header
		asm.LoadMem(asm.R3, asm.R9, ipOffVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R3),
		asm.RSh.Imm(asm.R2, 4),
		asm.JNE.Imm(asm.R2, 4, "not_l4"),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, "not_l4"),
		asm.LSh.Imm(asm.R3, 2),
		asm.LoadMem(asm.R5, asm.R9, ipOffProto, asm.Byte),
		asm.JEq.Imm(asm.R5, ipProtoTCP, "icmp_l4"),
		asm.JEq.Imm(asm.R5, ipProtoIPIP, "icmp_ipip"),
		asm.JNE.Imm(asm.R5, ipProtoUDP, "not_l4"),
	)
	b.label("icmp_l4")
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R2, be16(ipFragOffsetMaskHost), "not_l4"),
		asm.LoadMem(asm.R2, asm.R9, ipOffSrc, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R4, "no_service"),
		// Key: quoted source address, protocol, flags 0.
		asm.StoreMem(asm.RFP, slotKey, asm.R2, asm.Word),
		asm.StoreMem(asm.RFP, slotKey+6, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotKey+7, 0, asm.Byte),
		// The quoted ports, after the quoted header.
		asm.Add.Reg(asm.R9, asm.R3),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, quotedPortsLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R4, asm.R9, l4OffSrcPort, asm.Half),
		asm.StoreMem(asm.RFP, slotKey+4, asm.R4, asm.Half),
	)
	// Each lookup only while the service gate has its port's bit
	// (servicegate.go): the key's port is a service's.
	b.label("icmp_lookup")
	b.emit(
		asm.LoadMem(asm.R4, asm.RFP, slotKey+4, asm.Half),
		asm.LoadMem(asm.R5, asm.RFP, slotKey+6, asm.Byte),
	)
	matched, anyPort := b.fresh("icmp_match"), b.fresh("icmp_any")
	b.gatedLookups(svcGate, gate4, portsDst, slotKey, 4, asm.R5, asm.R4, lookup, matched, anyPort, "no_service", asm.JEq.Imm(asm.R0, 0, "no_service"))
	b.label(matched)
	b.count(steerICMPErrors)
	b.emit(
		// Not a flow with ports of its own: the local-node check skips a
		// frame whose key has a flag, so it never reads a flow key this
		// path did not build, and the worker gets every ICMP error.
		asm.StoreImm(asm.RFP, slotKey+7, flagICMPError, asm.Byte),
		asm.Ja.Label("match"),
	)
	steeringICMPIPIP(b)
}

// steeringICMPIPIP emits the "icmp_ipip" block, entered from "icmp_error"
// with R9 at the quoted IPv4 header, R3 its length and R4 the message's
// destination: an error about a VS/TUN packet the director sent, which
// ip_vs_in_icmp handles itself (it answers the client). The quoted outer
// packet must not be a non-first fragment and must come from the
// message's destination (the director's address, where the error was
// sent back to); the packet it carries must be an IPv4 TCP or UDP packet,
// not a non-first fragment, whose destination address, protocol and port
// (or port 0) is a service; its header and the four bytes of ports after
// it must be whole. Then it goes on as a matched error.
func steeringICMPIPIP(b *builder) {
	b.label("icmp_ipip")
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R2, be16(ipFragOffsetMaskHost), "not_l4"),
		asm.LoadMem(asm.R2, asm.R9, ipOffSrc, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R4, "no_service"),
		asm.Add.Reg(asm.R9, asm.R3), // R9: the tunnelled IPv4 header
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R9, ipOffVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R3),
		asm.RSh.Imm(asm.R2, 4),
		asm.JNE.Imm(asm.R2, 4, "not_l4"),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, "not_l4"),
		asm.LSh.Imm(asm.R3, 2),
		asm.LoadMem(asm.R5, asm.R9, ipOffProto, asm.Byte),
		asm.JEq.Imm(asm.R5, ipProtoTCP, "icmp_ipip_l4"),
		asm.JNE.Imm(asm.R5, ipProtoUDP, "not_l4"),
	)
	b.label("icmp_ipip_l4")
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R2, be16(ipFragOffsetMaskHost), "not_l4"),
		// Key: the tunnelled packet's destination (the VIP), protocol,
		// flags 0, and its destination port.
		asm.LoadMem(asm.R2, asm.R9, ipOffDst, asm.Word),
		asm.StoreMem(asm.RFP, slotKey, asm.R2, asm.Word),
		asm.StoreMem(asm.RFP, slotKey+6, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotKey+7, 0, asm.Byte),
		asm.Add.Reg(asm.R9, asm.R3),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, quotedPortsLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R2, asm.R9, l4OffSrcPort+2, asm.Half),
		asm.StoreMem(asm.RFP, slotKey+4, asm.R2, asm.Half),
		asm.Ja.Label("icmp_lookup"),
	)
}
