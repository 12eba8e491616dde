package dataplane

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
	"github.com/afvs/afvs/vs"
)

// fxRouter is a router between a real server and the client that sends
// ICMP errors about the real server's replies back toward the VIP.
var fxRouter = netip.MustParseAddr("198.18.5.1")

// icmpOpt changes one thing of icmpAbout's message.
type icmpOpt func(*icmpFrame)

type icmpFrame struct {
	typ, code uint8
	to        netip.Addr // the message's destination; default the quoted VIP
	proto     layers.IPProtocol
	cport     uint16
	quotedOff uint16 // quoted fragment offset in 8-byte units
	quotedIHL uint8  // a bad IHL written into the quoted header
	cut       int    // quoted bytes after the quoted IP header; default 8
}

func icmpType(typ, code uint8) icmpOpt { return func(f *icmpFrame) { f.typ, f.code = typ, code } }
func icmpTo(a netip.Addr) icmpOpt      { return func(f *icmpFrame) { f.to = a } }
func quoting(p layers.IPProtocol) icmpOpt {
	return func(f *icmpFrame) { f.proto = p }
}
func quotedOff(o uint16) icmpOpt { return func(f *icmpFrame) { f.quotedOff = o } }
func quotedIHL(v uint8) icmpOpt  { return func(f *icmpFrame) { f.quotedIHL = v } }
func quotedCut(n int) icmpOpt    { return func(f *icmpFrame) { f.cut = n } }
func icmpCport(p uint16) icmpOpt { return func(f *icmpFrame) { f.cport = p } }

// icmpAbout is an ICMP error (by default fragmentation needed, next-hop
// MTU 1400) from fxRouter to vip about a reply from vip:vport to the
// client's port 40000, quoting its IP header and first 8 bytes.
func icmpAbout(t testing.TB, vip netip.Addr, vport uint16, opts ...icmpOpt) []byte {
	t.Helper()
	f := icmpFrame{typ: 3, code: 4, to: vip, proto: layers.IPProtocolTCP, cport: 40000, cut: 8}
	for _, o := range opts {
		o(&f)
	}
	qip := ts.IPv4(vip, fxClient)
	qip.Flags, qip.FragOffset = layers.IPv4DontFragment, f.quotedOff
	var quoted []byte
	switch f.proto {
	case layers.IPProtocolUDP:
		quoted = ts.Build(t, qip, ts.UDP(vport, f.cport), ts.Payload(1400))
	case layers.IPProtocolTCP:
		quoted = ts.Build(t, qip, ts.TCP(vport, f.cport, ts.ACK), ts.Payload(1400))
	default:
		quoted = ts.Build(t, qip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, ts.Payload(1400))
	}
	if f.quotedIHL != 0 {
		quoted[0] = 0x40 | f.quotedIHL
	}
	quoted = quoted[:20+f.cut]
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(f.typ, f.code), Seq: 1400}
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ts.IPv4(fxRouter, f.to), ic, ts.RawPayload(quoted))
}

// badICMPChecksum flips a bit of the ICMP checksum of an untagged frame
// with a 20-byte IP header.
func badICMPChecksum(f []byte) []byte { return corrupt(f, 14+20+2, func(b byte) byte { return b ^ 1 }) }

// icmpForwarded checks the message goes unchanged but for its TTL (one
// less, ttl.go), from the router to the VIP, quoting the reply to the
// client's port 40000.
func icmpForwarded(vip netip.Addr, vport uint16, typ, code uint8) []c.Checker {
	return []c.Checker{c.SrcAddr(fxRouter), c.DstAddr(vip), c.TTL(63), c.ICMPv4(c.ICMPType(typ, code),
		c.Embedded(c.SrcAddr(vip), c.DstAddr(fxClient), c.SrcPort(vport), c.DstPort(40000)))}
}

// fragsOf cuts the IPv4 packet of an untagged frame into fragments of at
// most size payload bytes (a multiple of 8), each a whole frame.
func fragsOf(frame []byte, size int) [][]byte {
	hl := int(frame[14]&0x0f) * 4
	payload := frame[14+hl : 14+int(binary.BigEndian.Uint16(frame[16:]))]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := append(append([]byte(nil), frame[:14+hl]...), payload[off:end]...)
		ip := header.IPv4(f[14:])
		ip.SetTotalLength(uint16(hl + end - off))
		ff := uint16(off / 8)
		if end < len(payload) {
			ff |= header.IPv4FlagMF
		}
		ip.SetFlagsFragment(ff)
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
		out = append(out, f)
	}
	return out
}

// bigDgram is a 3000-byte UDP datagram (without DF) from the client to
// vip:53 with IP ID id, cut into fragments of 1480 payload bytes.
func bigDgram(t testing.TB, vip netip.Addr, id uint16) [][]byte {
	t.Helper()
	ip := ipHeader(vip, false)
	ip.Id = id
	return fragsOf(ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ip, ts.UDP(40000, 53), ts.Payload(3000)), 1480)
}

// holdAll processes fs, each held.
func holdAll(fs ...[]byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		for i, f := range fs {
			if v, _, _ := r.run(f, 256); v != VerdictHeld {
				t.Fatalf("prep frame %d: verdict %d, want held", i, v)
			}
		}
	}
}

func then(a, b func(testing.TB, *fxRig)) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) { a(t, r); b(t, r) }
}

func advance(d time.Duration) func(testing.TB, *fxRig) {
	return func(_ testing.TB, r *fxRig) { r.clock.Advance(d) }
}

// deleteUDPRealAfter opens a connection with f, then reloads the table
// without the DR UDP service's real server.
func deleteUDPRealAfter(f []byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		sendFirst(f)(t, r)
		tbl := fixtureTable(t)
		for i := range tbl.Services {
			if s := &tbl.Services[i]; s.Key.Addr == fxVIPDR && s.Key.Proto == vs.UDP {
				s.Reals = nil
			}
		}
		r.apply(t, tbl)
	}
}

// icmpFragFixtures are the fixture table's ICMP-error and fragment cases.
func icmpFragFixtures(t testing.TB) []fixture {
	drSYN, tunSYN := seg(t, fxVIPDR, 80), seg(t, fxVIPTUN, 80)
	drUDP := dgram(t, fxVIPDR, 53)
	dr3000, tun3000 := bigDgram(t, fxVIPDR, 7001), bigDgram(t, fxVIPTUN, 7002)
	held := make([][]byte, 0, FragHeld)
	for i := range FragHeld {
		held = append(held, bigDgram(t, fxVIPDR, uint16(8000+i))[1])
	}
	tinyTCP := fragsOf(ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeader(fxVIPDR, false), ts.TCP(40000, 80, ts.SYN), ts.Payload(100)), 16)[0]
	icmpFrag := fragsOf(ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeader(fxVIPDR, false),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, ts.Payload(3000)), 1480)[1]
	return []fixture{
		// ICMP errors about a connection go to its real server.
		{name: "ICMP frag needed about a DR reply: to its real server", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80),
			verdict: VerdictForward, drop: noDrop, out: dr(fxRSDR, icmpForwarded(fxVIPDR, 80, 3, 4)...)},
		{name: "ICMP frag needed about a TUN reply: tunnelled to its real server", prep: sendFirst(tunSYN), in: icmpAbout(t, fxVIPTUN, 80),
			verdict: VerdictForward, drop: noDrop, out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSTUN)),
				c.IPv4(c.SrcAddr(fxDir), c.DstAddr(fxRSTUN), c.Protocol(layers.IPProtocolIPv4), c.IPIP(icmpForwarded(fxVIPTUN, 80, 3, 4)...))}},
		{name: "ICMP port unreachable about a UDP reply", prep: sendFirst(drUDP),
			in:      icmpAbout(t, fxVIPDR, 53, icmpType(3, 3), quoting(layers.IPProtocolUDP)),
			verdict: VerdictForward, drop: noDrop, out: dr(fxRSDR, icmpForwarded(fxVIPDR, 53, 3, 3)...)},
		{name: "ICMP time exceeded", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, icmpType(11, 0)),
			verdict: VerdictForward, drop: noDrop, out: dr(fxRSDR, icmpForwarded(fxVIPDR, 80, 11, 0)...)},
		{name: "ICMP source quench", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, icmpType(4, 0)),
			verdict: VerdictForward, drop: noDrop, out: dr(fxRSDR, icmpForwarded(fxVIPDR, 80, 4, 0)...)},
		{name: "ICMP error of no connection", in: icmpAbout(t, fxVIPDR, 80), verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP error of another client port", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, icmpCport(40001)),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP error of no service", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 81), verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP error sent elsewhere than the quoted source", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, icmpTo(fxVIPTUN)),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP error rate-limited", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80), icmpFwdLimited: true,
			verdict: VerdictDrop, drop: DropICMPForwardLimited},
		{name: "ICMP error after its real server was deleted", prep: deleteRealAfter(drSYN), in: icmpAbout(t, fxVIPDR, 80),
			verdict: VerdictDrop, drop: DropDestUnavailable},
		{name: "ICMP parameter problem: not related", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, icmpType(12, 0)),
			verdict: VerdictDrop, parse: header.ICMPNotError},
		{name: "ICMP echo to a VIP", in: ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeader(fxVIPDR, true),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, ts.Payload(8)), verdict: VerdictDrop, parse: header.ICMPNotError},
		{name: "ICMP error with a bad checksum", prep: sendFirst(drSYN), in: badICMPChecksum(icmpAbout(t, fxVIPDR, 80)),
			verdict: VerdictDrop, parse: header.ICMPBadChecksum},
		{name: "ICMP error quoting no ports", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, quotedCut(3)),
			verdict: VerdictDrop, parse: header.ICMPTruncated},
		{name: "ICMP error quoting IHL 4", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, quotedIHL(4)),
			verdict: VerdictDrop, parse: header.ICMPBadInner},
		{name: "ICMP error quoting ICMP", in: icmpAbout(t, fxVIPDR, 80, quoting(layers.IPProtocolICMPv4)),
			verdict: VerdictDrop, parse: header.ICMPInnerNotL4},
		{name: "ICMP error quoting a non-first fragment", prep: sendFirst(drSYN), in: icmpAbout(t, fxVIPDR, 80, quotedOff(3)),
			verdict: VerdictDrop, parse: header.ICMPInnerFragment},

		// IPv4 fragments of virtual-service traffic.
		{name: "first fragment: scheduled as a packet", in: dr3000[0], verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSDR, c.SrcAddr(fxClient), c.DstAddr(fxVIPDR), c.ID(7001), c.MoreFragments(true), c.FragmentOffset(0))},
		{name: "later fragment follows its first, DR", prep: sendFirst(dr3000[0]), in: dr3000[1], verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSDR, c.SrcAddr(fxClient), c.DstAddr(fxVIPDR), c.ID(7001), c.MoreFragments(true), c.FragmentOffset(1480))},
		{name: "later fragment follows its first, TUN", prep: sendFirst(tun3000[0]), in: tun3000[2], verdict: VerdictForward, drop: noDrop,
			out: tun(fxRSTUN, false, c.SrcAddr(fxClient), c.DstAddr(fxVIPTUN), c.ID(7002), c.MoreFragments(false), c.FragmentOffset(2960))},
		{name: "later fragment before its first: held", in: dr3000[1], verdict: VerdictHeld, drop: noDrop},
		{name: "held fragment times out", prep: then(holdAll(dr3000[1]), advance(FragHoldTime+1)), in: tun3000[1],
			verdict: VerdictHeld, drop: DropFragTimeout},
		{name: "every hold slot taken", prep: holdAll(held...), in: dr3000[1], verdict: VerdictDrop, drop: DropFragHoldFull},
		{name: "later fragment after its real server was deleted", prep: deleteUDPRealAfter(dr3000[0]), in: dr3000[1],
			verdict: VerdictDrop, drop: DropDestUnavailable},
		{name: "first fragment cutting the TCP header", in: tinyTCP, verdict: VerdictDrop, parse: header.TruncatedL4},
		{name: "fragment of ICMP to a VIP", in: icmpFrag, verdict: VerdictDrop, parse: header.UnknownProtocol},
	}
}
