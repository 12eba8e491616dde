package xdpprog

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// icmpSpec describes an ICMP error a router sends toward the VIP about a
// reply the real server sent from the VIP to the client; the zero value
// of each field means "the usual": fragmentation needed quoting a TCP
// reply from the VIP port 80.
type icmpSpec struct {
	typ, code    uint8
	dst          netip.Addr // the message's destination; default the quoted source
	quotedSrc    netip.Addr // default the VIP
	quotedProto  layers.IPProtocol
	quotedPort   uint16 // quoted source port; default 80
	quotedOff    uint16 // quoted fragment offset, 8-byte units
	quotedIHL    uint8  // default 5
	outerFragOff uint16
	cut          int // bytes of the quoted packet after its IP header (negative: cut into it); default 8
}

const routerAddr = "198.18.3.1"

func icmpErrorFrame(t testing.TB, s icmpSpec) []byte {
	t.Helper()
	if s.typ == 0 {
		s.typ, s.code = 3, 4
	}
	if !s.quotedSrc.IsValid() {
		s.quotedSrc = vip
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
	qip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: s.quotedProto, Flags: layers.IPv4DontFragment,
		SrcIP: s.quotedSrc.AsSlice(), DstIP: clientAddr.AsSlice(), FragOffset: s.quotedOff}
	var l4 gopacket.SerializableLayer
	if s.quotedProto == layers.IPProtocolUDP {
		l4 = &layers.UDP{SrcPort: layers.UDPPort(s.quotedPort), DstPort: 40000}
	} else {
		l4 = &layers.TCP{SrcPort: layers.TCPPort(s.quotedPort), DstPort: 40000, ACK: true, Window: 1024}
	}
	switch s.quotedIHL {
	case 0:
	case 6: // NOP NOP NOP EOL
		qip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	}
	quoted := serialize(t, qip, l4, gopacket.Payload(make([]byte, 1400)))
	if s.quotedIHL != 0 && s.quotedIHL != 6 {
		quoted[0] = 0x40 | s.quotedIHL
	}
	quoted = quoted[:min(len(quoted), int(quoted[0]&0x0f)*4+s.cut)]
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, FragOffset: s.outerFragOff,
			SrcIP: netip.MustParseAddr(routerAddr).AsSlice(), DstIP: s.dst.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.typ, s.code), Seq: 1400},
		gopacket.Payload(quoted))
}

// ipipSpec describes an ICMP error a router between the director and a
// VS/TUN real server sends the director about an IPIP packet it could
// not forward: the zero value quotes the director's packet to realIP
// carrying a TCP segment from the client to the VIP's port 80, with the
// eight bytes of the tunnelled packet's TCP header after its IP header.
type ipipSpec struct {
	typ, code  uint8
	dst        netip.Addr // the message's destination; default the director
	outerSrc   netip.Addr // the quoted outer source; default the director
	outerOff   uint16     // the quoted outer packet's fragment offset
	innerDst   netip.Addr // default the VIP
	innerProto layers.IPProtocol
	innerPort  uint16 // the tunnelled packet's destination port; default 80
	innerOff   uint16
	innerVer   uint8 // version nibble; default 4
	cut        int   // bytes after the tunnelled IP header; default 8
}

func ipipErrorFrame(t testing.TB, s ipipSpec) []byte {
	t.Helper()
	if s.typ == 0 {
		s.typ, s.code = 3, 4
	}
	if !s.dst.IsValid() {
		s.dst = directorIP
	}
	if !s.outerSrc.IsValid() {
		s.outerSrc = directorIP
	}
	if !s.innerDst.IsValid() {
		s.innerDst = vip
	}
	if s.innerProto == 0 {
		s.innerProto = layers.IPProtocolTCP
	}
	if s.innerPort == 0 {
		s.innerPort = 80
	}
	if s.cut == 0 {
		s.cut = 8
	}
	inner := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: s.innerProto, Flags: layers.IPv4DontFragment,
		SrcIP: clientAddr.AsSlice(), DstIP: s.innerDst.AsSlice(), FragOffset: s.innerOff}
	var l4 gopacket.SerializableLayer = &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(s.innerPort), ACK: true, Window: 1024}
	if s.innerProto == layers.IPProtocolUDP {
		l4 = &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(s.innerPort)}
	}
	tunnelled := serialize(t, inner, l4, gopacket.Payload(make([]byte, 1400)))
	if s.innerVer != 0 {
		tunnelled[0] = s.innerVer<<4 | 5
	}
	tunnelled = tunnelled[:min(len(tunnelled), 20+s.cut)]
	outer := serialize(t, &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolIPv4, Flags: layers.IPv4DontFragment,
		SrcIP: s.outerSrc.AsSlice(), DstIP: realIP.AsSlice(), FragOffset: s.outerOff, Length: uint16(20 + 1460)})
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: netip.MustParseAddr(routerAddr).AsSlice(), DstIP: s.dst.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.typ, s.code), Seq: 1400},
		gopacket.Payload(append(outer[:20:20], tunnelled...)))
}

// icmpSteeringCases are the ICMP frames steeringCases adds.
func icmpSteeringCases(t testing.TB) []steeringCase {
	f := func(s icmpSpec) []byte { return icmpErrorFrame(t, s) }
	g := func(s ipipSpec) []byte { return ipipErrorFrame(t, s) }
	notL4 := StatsCounters{PassNotL4: 1}
	noService := StatsCounters{PassNoService: 1}
	return []steeringCase{
		{name: "icmp frag needed about tcp reply", frame: f(icmpSpec{}), matched: true, icmp: true},
		{name: "icmp port unreachable about udp reply", frame: f(icmpSpec{code: 3, typ: 3, quotedProto: layers.IPProtocolUDP, quotedPort: 53}), matched: true, icmp: true},
		{name: "icmp time exceeded", frame: f(icmpSpec{typ: 11}), matched: true, icmp: true},
		{name: "icmp source quench", frame: f(icmpSpec{typ: 4}), matched: true, icmp: true},
		{name: "icmp about port 0 service", frame: f(icmpSpec{quotedSrc: vipAllPorts, quotedPort: 2222}), matched: true, icmp: true},
		{name: "icmp quoted header with options", frame: f(icmpSpec{quotedIHL: 6}), matched: true, icmp: true},
		{name: "icmp parameter problem", frame: f(icmpSpec{typ: 12}), reason: notL4},
		{name: "icmp redirect", frame: f(icmpSpec{typ: 5}), reason: notL4},
		{name: "icmp quoting other port", frame: f(icmpSpec{quotedPort: 81}), reason: noService},
		{name: "icmp quoting other address", frame: f(icmpSpec{quotedSrc: otherAddr}), reason: noService},
		{name: "icmp to another address than quoted", frame: f(icmpSpec{dst: otherAddr}), reason: noService},
		{name: "icmp quoting udp to tcp service", frame: f(icmpSpec{quotedProto: layers.IPProtocolUDP}), reason: noService},
		{name: "icmp quoting a non-first fragment", frame: f(icmpSpec{quotedOff: 3}), reason: notL4},
		{name: "icmp quoting icmp", frame: f(icmpSpec{quotedProto: layers.IPProtocolICMPv4}), reason: notL4},
		{name: "icmp quoted ihl 4", frame: f(icmpSpec{quotedIHL: 4}), reason: notL4},
		{name: "icmp itself fragmented", frame: f(icmpSpec{outerFragOff: 0}), matched: true, icmp: true},
		{name: "icmp non-first fragment", frame: f(icmpSpec{outerFragOff: 2}), reason: notL4},
		{name: "icmp quoting no ports", frame: f(icmpSpec{cut: 2}), reason: StatsCounters{PassTruncated: 1}},
		{name: "icmp quoting header cut", frame: f(icmpSpec{cut: -10}), reason: StatsCounters{PassTruncated: 1}},
		// About the director's own IPIP packets (VS/TUN).
		{name: "icmp frag needed about ipip", frame: g(ipipSpec{}), matched: true, icmp: true},
		{name: "icmp time exceeded about ipip udp", frame: g(ipipSpec{typ: 11, innerProto: layers.IPProtocolUDP, innerPort: 53}), matched: true, icmp: true},
		{name: "icmp about ipip to a port 0 service", frame: g(ipipSpec{innerDst: vipAllPorts, innerPort: 2222}), matched: true, icmp: true},
		{name: "icmp about ipip not from the director", frame: g(ipipSpec{outerSrc: otherAddr}), reason: noService},
		{name: "icmp about ipip to another port", frame: g(ipipSpec{innerPort: 81}), reason: noService},
		{name: "icmp about ipip to another address", frame: g(ipipSpec{innerDst: otherAddr}), reason: noService},
		{name: "icmp about an ipip non-first fragment", frame: g(ipipSpec{outerOff: 5}), reason: notL4},
		{name: "icmp about ipip carrying a non-first fragment", frame: g(ipipSpec{innerOff: 5}), reason: notL4},
		{name: "icmp about ipip carrying ipv6", frame: g(ipipSpec{innerVer: 6}), reason: notL4},
		{name: "icmp about ipip carrying icmp", frame: g(ipipSpec{innerProto: layers.IPProtocolICMPv4}), reason: notL4},
		{name: "icmp about ipip without ports", frame: g(ipipSpec{cut: 2}), reason: StatsCounters{PassTruncated: 1}},
		{name: "icmp about ipip cut in the tunnelled header", frame: g(ipipSpec{cut: -4}), reason: StatsCounters{PassTruncated: 1}},
	}
}

// TestSteeringICMPErrorIsNeverLocalPass: with the local-node check on and
// a local flow's frame just steered (its flow key left on the program's
// stack), an ICMP error is redirected to the worker, never passed as the
// local flow's frame: the local-node check must not read a key the ICMP
// path did not build.
func TestSteeringICMPErrorIsNeverLocalPass(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.AllowLocal(LocalFlow{Src: clientAddr, Dst: vip, SrcPort: 40000, DstPort: 80, Proto: ipProtoTCP}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLocal(true); err != nil {
		t.Fatal(err)
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	icmp := icmpErrorFrame(t, icmpSpec{})
	for i := range 20 {
		if v, _ := runXDP(t, s.program(), syn); v != xdpPass {
			t.Fatalf("round %d: the local flow's frame: verdict %s", i, verdictName(v))
		}
		before := steeringStats(t, s)
		v, _ := runXDP(t, s.program(), icmp)
		got := steeringStats(t, s).minus(before)
		if want := (StatsCounters{Total: 1, Redirected: 1, ICMPErrors: 1}); v != xdpRedirect || got != want {
			t.Fatalf("round %d: ICMP error: verdict %s, counters %+v; want XDP_REDIRECT, %+v", i, verdictName(v), got, want)
		}
	}
}
