package xdpprog

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
)

// vip6AllPorts is an IPv6 VIP with a UDP service on every port; vip6
// (decap46_test.go) has TCP port 80. The steering table makes
// decap46_test.go's realIP6 a VS/NAT real server (TCP port 8080, UDP
// every port) and directorIP6 the director's address.
var vip6AllPorts = netip.MustParseAddr("2001:2:0:1::12")

// icmp6Frame is an ICMPv6 message of type typ from src to dst, with eight
// bytes of body.
func icmp6Frame(t testing.TB, src, dst netip.Addr, typ uint8) []byte {
	t.Helper()
	ip := &layers.IPv6{HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv6}, ip, icmp, gopacket.Payload(make([]byte, 8)))
}

// buildFrame6 is buildFrame for an IPv6 spec: from client6 (or an IPv6 spec.src)
// to spec.dst, with a destination options header first when spec.ext.
func buildFrame6(t testing.TB, spec frameSpec) []byte {
	t.Helper()
	if !spec.src.Is6() { // buildFrame's default is IPv4
		spec.src = client6
	}
	eth := &layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector}
	ls := []gopacket.SerializableLayer{eth}
	if spec.vlan != 0 {
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: spec.vlan})
	}
	ip := &layers.IPv6{HopLimit: 64, SrcIP: spec.src.AsSlice(), DstIP: spec.dst.AsSlice()}
	ls = append(ls, ip)
	if spec.ext {
		ip.NextHeader = layers.IPProtocolIPv6Destination
		opts := &layers.IPv6Destination{}
		opts.NextHeader = spec.proto
		opts.Options = []*layers.IPv6DestinationOption{{OptionType: 1, OptionData: make([]byte, 4)}} // PadN
		ls = append(ls, opts)
	}
	switch spec.proto {
	case layers.IPProtocolTCP:
		ls = append(ls, &layers.TCP{SrcPort: layers.TCPPort(spec.srcPort), DstPort: layers.TCPPort(spec.dstPort), SYN: true, Window: 1024})
	case layers.IPProtocolUDP:
		ls = append(ls, &layers.UDP{SrcPort: layers.UDPPort(spec.srcPort), DstPort: layers.UDPPort(spec.dstPort)})
	}
	if spec.payload == nil {
		spec.payload = []byte("hello")
	}
	ls = append(ls, gopacket.Payload(spec.payload))
	return serialize(t, ls...)
}

// neighborSolicitation is an NDP neighbour solicitation for target from
// client6: to target's solicited-node multicast group and MAC, or with
// unicast, to target and the director's MAC (a reachability probe).
func neighborSolicitation(t testing.TB, target netip.Addr, unicast bool) []byte {
	t.Helper()
	a := target.As16()
	dst := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
	mac := net.HardwareAddr{0x33, 0x33, 0xff, a[13], a[14], a[15]}
	if unicast {
		dst, mac = target, macDirector
	}
	ip := &layers.IPv6{HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: client6.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macClient}}}
	return serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: mac}, ip, icmp, ns)
}

// mldReport is an MLDv2 report from client6 to ff02::16 as a host sends
// it: hop limit 1, a hop-by-hop header with Router Alert (MLD) before the
// ICMPv6 message, type 143, reporting no group.
func mldReport(t testing.TB) []byte {
	t.Helper()
	dst := netip.MustParseAddr("ff02::16")
	ip := &layers.IPv6{HopLimit: 1, NextHeader: layers.IPProtocolICMPv6, SrcIP: client6.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeMLDv2MulticastListenerReportMessageV2, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	f := serialize(t, &layers.Ethernet{SrcMAC: macClient, DstMAC: net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0x16}, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, gopacket.Payload(make([]byte, 4)))
	// The pseudo-header of the ICMPv6 checksum names the upper layer,
	// so splicing the hop-by-hop header in keeps it right.
	hbh := []byte{58, 0, 5, 2, 0, 0, 1, 0} // Router Alert (MLD), PadN
	out := append(append(append([]byte(nil), f[:ethLen+40]...), hbh...), f[ethLen+40:]...)
	out[ethLen+6] = 0
	binary.BigEndian.PutUint16(out[ethLen+4:], uint16(len(out)-ethLen-40))
	return out
}

// steering6Cases are the IPv6 frames of the steering table: services are
// matched by their 16-byte address, protocol and port; everything else
// IPv6, neighbour discovery first, goes to the kernel.
func steering6Cases(t testing.TB) []steeringCase {
	tcp, udp := layers.IPProtocolTCP, layers.IPProtocolUDP
	f := func(s frameSpec) []byte { s.ipv6 = true; return buildFrame(t, s) }
	badVersion := f(frameSpec{dst: vip6, proto: tcp, dstPort: 80})
	badVersion[ethLen] = 0x40
	return []steeringCase{
		{name: "ipv6 vip udp any port", frame: f(frameSpec{dst: vip6AllPorts, proto: udp, dstPort: 5353}), matched: true},
		{name: "ipv6 vlan tagged match", frame: f(frameSpec{vlan: 7, dst: vip6, proto: tcp, dstPort: 80}), matched: true},
		{name: "ipv6 wrong port", frame: f(frameSpec{dst: vip6, proto: tcp, dstPort: 81}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 port 0 service is udp only", frame: f(frameSpec{dst: vip6AllPorts, proto: tcp, dstPort: 80}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 wrong address", frame: f(frameSpec{dst: netip.MustParseAddr("2001:2:0:1::11"), proto: tcp, dstPort: 80}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 the IPv4 vip mapped", frame: f(frameSpec{dst: netip.AddrFrom16(vip.As16()), proto: tcp, dstPort: 80}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 neighbour solicitation for the vip", frame: neighborSolicitation(t, vip6, false), reason: StatsCounters{PassNotL4: 1}},
		{name: "ipv6 unicast neighbour solicitation to the vip", frame: neighborSolicitation(t, vip6, true), reason: StatsCounters{PassNotL4: 1}},
		{name: "ipv6 mld report after a hop-by-hop router alert", frame: mldReport(t), reason: StatsCounters{PassNotL4: 1}},
		{name: "ipv6 destination options before tcp", frame: f(frameSpec{dst: vip6, proto: tcp, dstPort: 80, ext: true}), matched: true},
		{name: "ipv6 hop-by-hop, routing, options, options before udp", frame: ext6Frame(t, udp, 0, 43, 60, 60), matched: true},
		{name: "ipv6 five extension headers", frame: ext6Frame(t, udp, 60, 60, 60, 60, 60), reason: StatsCounters{PassNotL4: 1}},
		{name: "ipv6 hop-by-hop second", frame: ext6Frame(t, udp, 60, 0), reason: StatsCounters{PassNotL4: 1}},
		// Fragments to a VIP, first or not, go to the worker to be
		// dropped as ipv6_fragment, matched by the Fragment header's next
		// header and the address; the kernel keeps the others.
		{name: "ipv6 udp fragment to the vip", frame: ext6Frame(t, udp, 44), matched: true, frag: true},
		{name: "ipv6 tcp fragment to the vip", frame: ext6Frame(t, tcp, 44), matched: true, frag: true},
		{name: "ipv6 fragment after destination options", frame: ext6Frame(t, udp, 60, 44), matched: true, frag: true},
		{name: "ipv6 fragment after four extension headers", frame: ext6Frame(t, udp, 0, 43, 60, 60, 44), matched: true, frag: true},
		{name: "ipv6 fragment of a protocol the vip has no service for", frame: withDst6(ext6Frame(t, udp, 44), vip6), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 fragment to no vip", frame: withDst6(ext6Frame(t, udp, 44), client6), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 fragment cut in its header", frame: ext6Frame(t, udp, 44)[:ethLen+40+7], reason: StatsCounters{PassTruncated: 1}},
		{name: "ipv6 cut in an extension header", frame: ext6Frame(t, udp, 60, 60)[:ethLen+40+8+4], reason: StatsCounters{PassTruncated: 1}},
		{name: "ipv6 cut in tcp after an extension header", frame: f(frameSpec{dst: vip6, proto: tcp, dstPort: 80, ext: true})[:ethLen+40+8+19], reason: StatsCounters{PassTruncated: 1}},
		{name: "ipv6 version 4 in ipv6 ethertype", frame: badVersion, reason: StatsCounters{PassBadHeader: 1}},
		{name: "ipv6 cut in the fixed header", frame: f(frameSpec{dst: vip6, proto: tcp, dstPort: 80})[:ethLen+39], reason: StatsCounters{PassTruncated: 1}},

		// VS/NAT over IPv6: replies and ICMPv6 errors from a real server.
		{name: "ipv6 nat reply", frame: f(frameSpec{src: realIP6, srcPort: 8080, dst: client6, proto: tcp, dstPort: 40000}), matched: true},
		{name: "ipv6 nat reply after an extension header", frame: f(frameSpec{src: realIP6, srcPort: 8080, dst: client6, proto: tcp, dstPort: 40000, ext: true}), matched: true},
		{name: "ipv6 nat reply from another port", frame: f(frameSpec{src: realIP6, srcPort: 8081, dst: client6, proto: tcp, dstPort: 40000}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 nat reply udp any port", frame: f(frameSpec{src: realIP6, srcPort: 5353, dst: client6, proto: udp, dstPort: 40000}), matched: true},
		{name: "ipv6 nat real server answers the director", frame: f(frameSpec{src: realIP6, srcPort: 8080, dst: directorIP6, proto: tcp, dstPort: 40000}), reason: StatsCounters{PassNoService: 1}},
		{name: "ipv6 nat reply cut in tcp", frame: f(frameSpec{src: realIP6, srcPort: 8080, dst: client6, proto: tcp, dstPort: 40000})[:ethLen+40+19], reason: StatsCounters{PassTruncated: 1}},
		{name: "icmpv6 error from a nat real server", frame: icmp6Frame(t, realIP6, client6, 1), matched: true},
		{name: "icmpv6 packet too big from a nat real server", frame: icmp6Frame(t, realIP6, client6, 2), matched: true},
		// icmp6Frame quotes 8 zero bytes: an error not taken by its
		// source is cut in its quote (steericmp6.go).
		{name: "icmpv6 error from a nat real server to the director", frame: icmp6Frame(t, realIP6, directorIP6, 3), reason: StatsCounters{PassTruncated: 1}},
		{name: "icmpv6 echo from a nat real server", frame: icmp6Frame(t, realIP6, client6, 128), reason: StatsCounters{PassNotL4: 1}},
		{name: "icmpv6 neighbour solicitation from a nat real server", frame: icmp6Frame(t, realIP6, directorIP6, 135), reason: StatsCounters{PassNotL4: 1}},
		{name: "icmpv6 type 0 from a nat real server", frame: icmp6Frame(t, realIP6, client6, 0), reason: StatsCounters{PassNotL4: 1}},
		{name: "icmpv6 error from another address", frame: icmp6Frame(t, client6, vip6, 1), reason: StatsCounters{PassTruncated: 1}},
		{name: "icmpv6 from a nat real server cut in its header", frame: icmp6Frame(t, realIP6, client6, 1)[:ethLen+40+3], reason: StatsCounters{PassTruncated: 1}},
	}
}

// ext6Frame is a UDP (or TCP) datagram to vip6's all-ports VIP (TCP: to
// vip6 port 80) behind the extension headers exts, each 8 bytes (a PadN
// option filling it), built by hand: gopacket serialises one of each
// type at most.
func ext6Frame(t testing.TB, proto layers.IPProtocol, exts ...uint8) []byte {
	t.Helper()
	dst := vip6AllPorts
	if proto == layers.IPProtocolTCP {
		dst = vip6
	}
	f := buildFrame(t, frameSpec{ipv6: true, dst: dst, proto: proto, dstPort: 80})
	l4 := append([]byte(nil), f[ethLen+40:]...)
	var chain []byte
	next := uint8(proto)
	for i := len(exts) - 1; i >= 0; i-- {
		chain = append([]byte{next, 0, 1, 4, 0, 0, 0, 0}, chain...)
		next = exts[i]
	}
	out := append(append(append([]byte(nil), f[:ethLen+40]...), chain...), l4...)
	out[ethLen+6] = next
	binary.BigEndian.PutUint16(out[ethLen+4:], uint16(len(chain)+len(l4)))
	return out
}

// withDst6 returns f, an untagged IPv6 frame, with its destination set to
// dst.
func withDst6(f []byte, dst netip.Addr) []byte {
	a := dst.As16()
	copy(f[ethLen+24:ethLen+40], a[:])
	return f
}

// refSteer6 is refSteer for an IPv6 frame whose header starts at l3: TCP
// or UDP after at most four extension headers (hop-by-hop only first,
// routing, destination options), to an IPv6 service's address, protocol
// and port (or port 0), or else from a VS/NAT real server's; a Fragment
// header met on that walk, to an IPv6 service's address and the protocol
// it names; or an ICMPv6
// error (type 1 to 127) from a NAT real server's address, or else one
// refSteerICMP6 takes by its quote. A frame from a NAT real server to a
// director address is no service's.
func refSteer6(f []byte, l3 int, services []ServiceKey, out *StatsCounters, matched func()) {
	var src, dst [16]byte // read once the fixed header is known present
	if len(f) >= l3+40 {
		src, dst = [16]byte(f[l3+8:l3+24]), [16]byte(f[l3+24:l3+40])
	}
	fromNAT := func(proto uint8, port uint16) {
		for _, s := range services {
			if s.Local && s.Addr.Is6() && s.Addr.As16() == dst {
				out.PassNoService = 1
				return
			}
		}
		for _, s := range services {
			if s.Source && s.Addr.Is6() && s.Addr.As16() == src && s.Proto == proto && (s.Port == port || s.Port == 0) {
				matched()
				return
			}
		}
		out.PassNoService = 1
	}
	if len(f) < l3+40 {
		out.PassTruncated = 1
		return
	}
	if f[l3]>>4 != 6 {
		out.PassBadHeader = 1
		return
	}
	proto := f[l3+6]
	l4 := l3 + 40
	for n := 0; proto != 6 && proto != 17; n++ {
		if proto == 58 {
			// With its first four bytes present: informational
			// messages pass; an error from a NAT real server's
			// address, not to the director, is taken. Anything else
			// may still be taken by its quote.
			if len(f) >= l4+4 {
				if f[l4] == 0 || f[l4] >= 128 {
					out.PassNotL4 = 1
					return
				}
				if fromNATICMP6(src, dst, services) {
					matched()
					return
				}
			}
			refSteerICMP6(f, l4, dst, services, out, matched)
			return
		}
		if proto == 44 {
			// A fragment: by the address and the protocol its header
			// names, to any service of the address.
			switch {
			case len(f) < l4+8:
				out.PassTruncated = 1
			case hasAny6(dst, f[l4], services):
				out.Fragments = 1
				matched()
			default:
				out.PassNoService = 1
			}
			return
		}
		if n == maxExt6 || proto != 43 && proto != 60 && (proto != 0 || n != 0) {
			out.PassNotL4 = 1
			return
		}
		if len(f) < l4+8 {
			out.PassTruncated = 1
			return
		}
		proto = f[l4]
		l4 += (int(f[l4+1]) + 1) * 8
	}
	need := 8
	if proto == 6 {
		need = 20
	}
	if len(f) < l4+need {
		out.PassTruncated = 1
		return
	}
	port := binary.BigEndian.Uint16(f[l4+2:])
	for _, s := range services {
		if !s.Source && !s.Local && s.Addr.Is6() && !s.Addr.Is4In6() && s.Addr.As16() == dst && s.Proto == proto && (s.Port == port || s.Port == 0) {
			matched()
			return
		}
	}
	fromNAT(proto, binary.BigEndian.Uint16(f[l4:]))
}

// hasAny6 reports whether an IPv6 service (not a NAT real server's or a
// director address's key) is on dst and proto, on any port.
func hasAny6(dst [16]byte, proto uint8, services []ServiceKey) bool {
	for _, s := range services {
		if !s.Source && !s.Local && s.Addr.Is6() && !s.Addr.Is4In6() && s.Addr.As16() == dst && s.Proto == proto {
			return true
		}
	}
	return false
}

// fromNATICMP6 reports whether an ICMPv6 error from src to dst is a VS/NAT
// real server's that the program takes by its source: src is a NAT real
// server's address and dst none of the director's.
func fromNATICMP6(src, dst [16]byte, services []ServiceKey) bool {
	for _, s := range services {
		if s.Local && s.Addr.Is6() && s.Addr.As16() == dst {
			return false
		}
	}
	for _, s := range services {
		if s.Source && s.Addr.Is6() && s.Addr.As16() == src {
			return true
		}
	}
	return false
}

// TestSteeringExtLimitIsTheParsers: the program walks as many IPv6
// extension headers as the userspace parser accepts.
func TestSteeringExtLimitIsTheParsers(t *testing.T) {
	if maxExt6 != header.MaxIPv6ExtHeaders {
		t.Fatalf("steering walks %d extension headers, the parser %d", maxExt6, header.MaxIPv6ExtHeaders)
	}
}
