package checker

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	ts "github.com/afvs/afvs/internal/testsupport"
)

// recorder is a testing.TB that collects Errorf messages.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

var (
	macA   = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB   = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	client = netip.MustParseAddr("198.18.0.10")
	vip    = netip.MustParseAddr("198.19.0.1")
	dir    = netip.MustParseAddr("198.18.0.2")
	rs     = netip.MustParseAddr("198.18.0.11")
)

func tcpFrame(t *testing.T) []byte {
	ip := ts.IPv4(client, vip)
	ip.TOS, ip.Id, ip.Flags = 0x10, 77, layers.IPv4DontFragment
	return ts.Build(t, ts.Eth(macA, macB), ip, ts.TCP(40000, 80, ts.SYN|ts.ACK), ts.Payload(10))
}

// TestCheckerPasses: every field of a built frame checks out as built.
func TestCheckerPasses(t *testing.T) {
	var r recorder
	Frame(&r, tcpFrame(t), SrcMAC(macA), DstMAC(macB), NoVLAN(),
		IPv4(SrcAddr(client), DstAddr(vip), TTL(64), TOS(0x10), ID(77), DontFragment(true), MoreFragments(false),
			FragmentOffset(0), TotalLength(20+20+10), HeaderLength(20), Protocol(layers.IPProtocolTCP), NotTunnelled(),
			TCP(SrcPort(40000), DstPort(80), TCPFlags(ts.SYN|ts.ACK), PayloadLen(10), Payload(ts.Payload(10)))))
	if len(r.errs) > 0 {
		t.Fatalf("a frame checked against what built it: %q", r.errs)
	}
}

// TestCheckerReportsEachField: a wrong expectation for each field is
// reported, naming the field.
func TestCheckerReportsEachField(t *testing.T) {
	f := tcpFrame(t)
	for _, tc := range []struct {
		c    Checker
		want string
	}{
		{SrcMAC(macB), "source MAC"},
		{DstMAC(macA), "destination MAC"},
		{VLAN(5, 0), "802.1Q"},
		{IPv4(SrcAddr(vip)), "source address"},
		{IPv4(DstAddr(client)), "destination address"},
		{IPv4(TTL(63)), "TTL"},
		{IPv4(TOS(0)), "TOS"},
		{IPv4(ID(78)), "ID"},
		{IPv4(DontFragment(false)), "DF"},
		{IPv4(MoreFragments(true)), "MF"},
		{IPv4(FragmentOffset(8)), "fragment offset"},
		{IPv4(TotalLength(51)), "total length"},
		{IPv4(HeaderLength(24)), "header length"},
		{IPv4(Protocol(layers.IPProtocolUDP)), "protocol"},
		{IPv4(IPIP()), "want IPv4 in IPv4"},
		{IPv4(UDP()), "want UDP"},
		{IPv4(TCP(SrcPort(1))), "source port"},
		{IPv4(TCP(DstPort(81))), "destination port"},
		{IPv4(TCP(TCPFlags(ts.SYN))), "TCP flags"},
		{IPv4(TCP(PayloadLen(11))), "payload of 10"},
		{IPv4(TCP(Payload(make([]byte, 10)))), "payload differs"},
		{IPv4(ICMPv4()), "want ICMPv4"},
	} {
		var r recorder
		Frame(&r, f, tc.c)
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], tc.want) {
			t.Errorf("want one error naming %q, got %q", tc.want, r.errs)
		}
	}
}

// TestCheckerVerifiesChecksums: a flipped bit in the IPv4 header or the
// TCP segment is reported even when no check names that field.
func TestCheckerVerifiesChecksums(t *testing.T) {
	for _, tc := range []struct {
		at   int
		want string
	}{
		{14 + 8, "header checksum"},   // TTL
		{14 + 20 + 4, "TCP checksum"}, // sequence number
		{len(tcpFrame(t)) - 1, "TCP checksum"},
	} {
		f := tcpFrame(t)
		f[tc.at] ^= 1
		var r recorder
		Frame(&r, f)
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], tc.want) {
			t.Errorf("byte %d flipped: want one error naming %q, got %q", tc.at, tc.want, r.errs)
		}
	}
	var r recorder
	Frame(&r, tcpFrame(t)[:30])
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "does not decode") {
		t.Errorf("a truncated frame: %q", r.errs)
	}
}

// TestCheckerIPIPAndVLAN: a tagged IPIP frame, with the outer and inner
// headers checked apart.
func TestCheckerIPIPAndVLAN(t *testing.T) {
	outer := ts.IPv4(dir, rs)
	outer.TTL = 63
	inner := ts.IPv4(client, vip)
	f := ts.Build(t, ts.Eth(macA, macB), &layers.Dot1Q{VLANIdentifier: 7, Priority: 3}, outer, inner, ts.UDP(5000, 53), ts.Payload(3))
	var r recorder
	Frame(&r, f, VLAN(7, 3), IPv4(SrcAddr(dir), DstAddr(rs), TTL(63), Protocol(layers.IPProtocolIPv4),
		IPIP(SrcAddr(client), DstAddr(vip), TTL(64), UDP(SrcPort(5000), DstPort(53), PayloadLen(3)))))
	if len(r.errs) > 0 {
		t.Fatalf("%q", r.errs)
	}
	Frame(&r, f, IPv4(IPIP(SrcAddr(dir))), IPv4(NotTunnelled()))
	if len(r.errs) != 2 {
		t.Fatalf("inner source and tunnel count: want 2 errors, got %q", r.errs)
	}
}

// TestCheckerICMP: a fragmentation-needed message with the offending
// packet's header and first 8 bytes inside.
func TestCheckerICMP(t *testing.T) {
	orig := tcpFrame(t)[14:]
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
	f := ts.Build(t, ts.Eth(macB, macA), ts.IPv4(dir, client), icmp, ts.RawPayload(orig[:28]))
	var r recorder
	Frame(&r, f, IPv4(SrcAddr(dir), ICMPv4(ICMPType(3, 4), ICMPMTU(1400),
		Embedded(SrcAddr(client), DstAddr(vip), SrcPort(40000), DstPort(80)))))
	if len(r.errs) > 0 {
		t.Fatalf("%q", r.errs)
	}
	Frame(&r, f, IPv4(ICMPv4(ICMPType(3, 3), ICMPMTU(1500), Embedded(DstPort(81)))))
	if len(r.errs) != 3 {
		t.Fatalf("type, MTU and embedded port: want 3 errors, got %q", r.errs)
	}
}
