package xdpprog

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// router6 sends ICMPv6 errors about replies back toward the VIP.
var router6 = netip.MustParseAddr("2001:2:3::1")

// icmp6Spec describes an ICMPv6 error a router sends toward an IPv6 VIP
// about a reply the real server sent from it to client6; the zero value
// of each field means "the usual": Packet Too Big quoting a TCP reply from
// vip6 port 80, its IPv6 header and 8 bytes after its extension headers.
type icmp6Spec struct {
	typ, code   uint8
	src         netip.Addr // the message's source; default router6
	dst         netip.Addr // the message's destination; default the quoted source
	quotedSrc   netip.Addr // default vip6
	quotedProto layers.IPProtocol
	quotedPort  uint16   // quoted source port; default 80
	exts        [][]byte // quoted extension headers, each {next, len, ...}: next is filled in
	outerExts   int      // destination options headers before the ICMPv6 header
	version     uint8    // quoted version nibble; default 6
	cut         int      // quoted bytes after the extension headers (negative: cut into them); default 8
}

// ext6Opts is an 8-byte destination options header (type 60), ext6Frag a
// fragment header (type 44) of offset off in 8-byte units.
func ext6Hdr(typ uint8) []byte { return []byte{typ, 0, 0, 1, 4, 0, 0, 0} }
func ext6Frag(off uint16) []byte {
	return []byte{44, 0, byte(off >> 5), byte(off<<3) | 1, 0, 0, 0, 7}
}

func icmp6ErrorFrame(t testing.TB, s icmp6Spec) []byte {
	t.Helper()
	if s.typ == 0 {
		s.typ = 2
	}
	if !s.quotedSrc.IsValid() {
		s.quotedSrc = vip6
	}
	if !s.dst.IsValid() {
		s.dst = s.quotedSrc
	}
	if s.quotedProto == 0 {
		s.quotedProto = layers.IPProtocolTCP
	}
	if s.quotedPort == 0 {
		s.quotedPort = 80
	}
	if s.cut == 0 {
		s.cut = 8
	}
	if !s.src.IsValid() {
		s.src = router6
	}
	qip := &layers.IPv6{HopLimit: 63, SrcIP: s.quotedSrc.AsSlice(), DstIP: client6.AsSlice()}
	var l4 gopacket.SerializableLayer
	switch s.quotedProto {
	case layers.IPProtocolUDP:
		l4 = &layers.UDP{SrcPort: layers.UDPPort(s.quotedPort), DstPort: 40000}
	case layers.IPProtocolTCP:
		l4 = &layers.TCP{SrcPort: layers.TCPPort(s.quotedPort), DstPort: 40000, ACK: true, Window: 1024}
	case layers.IPProtocolIPv6: // the director's own 6in6 packet, carrying a client's
		l4 = &layers.IPv6{HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: client6.AsSlice(), DstIP: vip6.AsSlice()}
	default:
		l4 = &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(129, 0)}
	}
	q := serialize(t, qip, l4, gopacket.Payload(make([]byte, 1200)))
	var chain []byte
	next := q[6]
	for i := len(s.exts) - 1; i >= 0; i-- {
		h := append([]byte(nil), s.exts[i]...)
		h[0], next = next, h[0]
		chain = append(h, chain...)
	}
	// Each entry of exts names its own type in byte 0 before the swap
	// above moved it into next.
	q[6] = next
	q = append(append(append([]byte(nil), q[:40]...), chain...), q[40:]...)
	binary.BigEndian.PutUint16(q[4:], uint16(len(q)-40))
	if s.version != 0 {
		q[0] = s.version<<4 | q[0]&0x0f
	}
	q = q[:40+len(chain)+s.cut]
	f := serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector},
		&layers.IPv6{HopLimit: 64, SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(s.typ, s.code)},
		gopacket.Payload(append(binary.BigEndian.AppendUint32(nil, 1400), q...)))
	if s.outerExts == 0 {
		return f
	}
	var outer []byte
	nh := f[ethLen+6]
	for range s.outerExts {
		outer = append([]byte{nh, 0, 1, 4, 0, 0, 0, 0}, outer...)
		nh = ipProtoDestOpts
	}
	out := append(append(append([]byte(nil), f[:ethLen+40]...), outer...), f[ethLen+40:]...)
	out[ethLen+6] = nh
	binary.BigEndian.PutUint16(out[ethLen+4:], uint16(len(out)-ethLen-40))
	return out
}

// icmp6SteeringCases are the ICMPv6 frames steeringCases adds.
func icmp6SteeringCases(t testing.TB) []steeringCase {
	f := func(s icmp6Spec) []byte { return icmp6ErrorFrame(t, s) }
	notL4 := StatsCounters{PassNotL4: 1}
	noService := StatsCounters{PassNoService: 1}
	truncated := StatsCounters{PassTruncated: 1}
	udp := layers.IPProtocolUDP
	return []steeringCase{
		{name: "icmp6 packet too big about tcp reply", frame: f(icmp6Spec{}), matched: true, icmp: true},
		{name: "icmp6 destination unreachable about udp reply", frame: f(icmp6Spec{typ: 1, code: 4, quotedSrc: vip6AllPorts, quotedProto: udp, quotedPort: 5353}), matched: true, icmp: true},
		{name: "icmp6 time exceeded", frame: f(icmp6Spec{typ: 3}), matched: true, icmp: true},
		{name: "icmp6 parameter problem", frame: f(icmp6Spec{typ: 4, code: 1}), matched: true, icmp: true},
		{name: "icmp6 behind destination options", frame: f(icmp6Spec{outerExts: 2}), matched: true, icmp: true},
		{name: "icmp6 quoting four extension headers", frame: f(icmp6Spec{exts: [][]byte{ext6Hdr(0), ext6Hdr(43), ext6Frag(0), ext6Hdr(60)}}), matched: true, icmp: true},
		{name: "icmp6 type 5", frame: f(icmp6Spec{typ: 5}), reason: notL4},
		{name: "icmp6 echo request", frame: f(icmp6Spec{typ: 128}), reason: notL4},
		{name: "icmp6 router advertisement", frame: f(icmp6Spec{typ: 134}), reason: notL4},
		{name: "icmp6 mld report", frame: f(icmp6Spec{typ: 143}), reason: notL4},
		{name: "icmp6 quoting other port", frame: f(icmp6Spec{quotedPort: 81}), reason: noService},
		{name: "icmp6 quoting other address", frame: f(icmp6Spec{quotedSrc: netip.MustParseAddr("2001:2:0:1::99")}), reason: noService},
		{name: "icmp6 to another address than quoted", frame: f(icmp6Spec{dst: vip6AllPorts}), reason: noService},
		{name: "icmp6 quoting udp to a tcp service", frame: f(icmp6Spec{quotedProto: udp}), reason: noService},
		// ip_vs_in_icmp_v6 has no tunnel branch (ip_vs_in_icmp's IPIP one is
		// IPv4's): an error about the director's own IPv6 tunnel packet
		// is the kernel's.
		{name: "icmp6 about the director's 6in6 packet", frame: f(icmp6Spec{quotedSrc: netip.MustParseAddr("2001:2::2"), quotedProto: layers.IPProtocolIPv6}), reason: notL4},
		{name: "icmp6 quoting icmp6", frame: f(icmp6Spec{quotedProto: layers.IPProtocolICMPv6}), reason: notL4},
		{name: "icmp6 quoting version 4", frame: f(icmp6Spec{version: 4}), reason: notL4},
		{name: "icmp6 quoting a non-first fragment", frame: f(icmp6Spec{exts: [][]byte{ext6Frag(3)}}), reason: notL4},
		{name: "icmp6 quoting hop-by-hop second", frame: f(icmp6Spec{exts: [][]byte{ext6Hdr(60), ext6Hdr(0)}}), reason: notL4},
		{name: "icmp6 quoting five extension headers", frame: f(icmp6Spec{exts: [][]byte{ext6Hdr(60), ext6Hdr(60), ext6Hdr(60), ext6Hdr(60), ext6Hdr(60)}}), reason: notL4},
		{name: "icmp6 quoting no ports", frame: f(icmp6Spec{cut: 3}), reason: truncated},
		{name: "icmp6 quoted header cut", frame: f(icmp6Spec{cut: -1}), reason: truncated},
		{name: "icmp6 quoted extension header cut", frame: f(icmp6Spec{exts: [][]byte{ext6Hdr(60)}, cut: -2}), reason: truncated},
		{name: "icmp6 quoted fragment header cut", frame: f(icmp6Spec{exts: [][]byte{ext6Frag(0)}, cut: -5}), reason: truncated},
		{name: "icmp6 cut in its header", frame: f(icmp6Spec{})[:ethLen+40+6], reason: truncated},
		// With VS/NAT real servers (steernat6.go): an error from a NAT
		// real server's address is taken by its source unless it is to
		// the director; one to the director, or from anyone else, is
		// still taken by its quote.
		{name: "icmp6 from a nat real server to a vip", frame: f(icmp6Spec{src: realIP6}), matched: true},
		{name: "icmp6 from a nat real server to a client", frame: f(icmp6Spec{src: realIP6, dst: client6}), matched: true},
		{name: "icmp6 from a nat real server to the director quoting no service", frame: f(icmp6Spec{src: realIP6, dst: directorIP6}), reason: noService},
		{name: "icmp6 from a nat real server to the director quoting its own packet", frame: f(icmp6Spec{src: realIP6, quotedSrc: directorIP6}), reason: noService},
		{name: "icmp6 packet too big from a client's router about a nat reply", frame: f(icmp6Spec{src: client6, quotedSrc: vip6AllPorts, quotedProto: udp, quotedPort: 8080}), matched: true, icmp: true},
		{name: "icmp6 echo request from a nat real server", frame: f(icmp6Spec{src: realIP6, typ: 128}), reason: notL4},
		{name: "icmp6 neighbour solicitation from a nat real server", frame: f(icmp6Spec{src: realIP6, dst: client6, typ: 135}), reason: notL4},
		{name: "icmp6 from a nat real server cut in its header", frame: f(icmp6Spec{src: realIP6, dst: client6})[:ethLen+40+3], reason: truncated},
	}
}

// refSteerICMP6 is the reference for an ICMPv6 message at ic in a frame
// to dst: an error (type 1 to 4) quoting an IPv6 packet from dst that is,
// after at most four extension headers (hop-by-hop first only, routing,
// destination options, fragment of offset 0), TCP or UDP whose source
// address, protocol and port is an IPv6 service.
func refSteerICMP6(f []byte, ic int, dst [16]byte, services []ServiceKey, out *StatsCounters, matched func()) {
	if len(f) < ic+8 {
		out.PassTruncated = 1
		return
	}
	if t := f[ic]; t < 1 || t > 4 {
		out.PassNotL4 = 1
		return
	}
	q := ic + 8
	if len(f) < q+40 {
		out.PassTruncated = 1
		return
	}
	if f[q]>>4 != 6 {
		out.PassNotL4 = 1
		return
	}
	src := [16]byte(f[q+8 : q+24])
	if src != dst {
		out.PassNoService = 1
		return
	}
	proto, at := f[q+6], q+40
	for n := 0; proto != 6 && proto != 17; n++ {
		if n == maxExt6 || proto != 43 && proto != 60 && proto != 44 && (proto != 0 || n != 0) {
			out.PassNotL4 = 1
			return
		}
		if len(f) < at+8 {
			out.PassTruncated = 1
			return
		}
		if proto == 44 {
			if binary.BigEndian.Uint16(f[at+2:])&0xfff8 != 0 {
				out.PassNotL4 = 1
				return
			}
			proto, at = f[at], at+8
			continue
		}
		proto, at = f[at], at+(int(f[at+1])+1)*8
	}
	if len(f) < at+4 {
		out.PassTruncated = 1
		return
	}
	port := binary.BigEndian.Uint16(f[at:])
	for _, s := range services {
		if !s.Source && !s.Local && s.Addr.Is6() && !s.Addr.Is4In6() && s.Addr.As16() == src && s.Proto == proto && (s.Port == port || s.Port == 0) {
			out.ICMPErrors = 1
			matched()
			return
		}
	}
	out.PassNoService = 1
}

// TestSteeringICMPv6ErrorIsNeverLocalPass: with the local-node check on,
// an ICMPv6 error taken by its quote goes to the worker even when the
// flow key the local-node check would build from it (the message's
// source, the VIP, the quoted ports and protocol) names a local-node
// flow: the error carries no flow of its own, as on IPv4
// (TestSteeringICMPErrorIsNeverLocalPass).
func TestSteeringICMPv6ErrorIsNeverLocalPass(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.AllowLocal(LocalFlow{Src: client6, Dst: vip6, SrcPort: 80, DstPort: 40000, Proto: ipProtoTCP}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLocal(true); err != nil {
		t.Fatal(err)
	}
	icmp := icmp6ErrorFrame(t, icmp6Spec{src: client6})
	before := steeringStats(t, s)
	v, _ := runXDP(t, s.program(), icmp)
	got := steeringStats(t, s).minus(before)
	if want := (StatsCounters{Total: 1, Redirected: 1, ICMPErrors: 1}); v != xdpRedirect || got != want {
		t.Fatalf("ICMPv6 error: verdict %s, counters %+v; want XDP_REDIRECT, %+v", verdictName(v), got, want)
	}
}
