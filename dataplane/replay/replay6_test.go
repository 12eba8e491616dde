package replay

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/afvs/afvs/vs"
)

var (
	vip6    = net.ParseIP("2001:2::1")
	client6 = net.ParseIP("2001:2::99")
)

// frames6 are IPv6 frames of every kind a capture may hold, each named by
// the drop reason the parser gives it where it has one of its own.
func frames6(t *testing.T) map[string][]byte {
	t.Helper()
	eth := func() *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: clientMAC, DstMAC: dirMAC, EthernetType: layers.EthernetTypeIPv6}
	}
	ip := func(src, dst net.IP, hop uint8, next layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: hop, NextHeader: next, SrcIP: src, DstIP: dst}
	}
	tcp := func(ip *layers.IPv6, syn bool) *layers.TCP {
		tc := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: syn, ACK: !syn, Seq: 100, Window: 512}
		tc.SetNetworkLayerForChecksum(ip)
		return tc
	}
	syn := ip(client6, vip6, 64, layers.IPProtocolTCP)
	ack := ip(client6, vip6, 64, layers.IPProtocolTCP)
	udpIP := ip(client6, vip6, 64, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	udp.SetNetworkLayerForChecksum(udpIP)
	hop0 := ip(client6, vip6, 0, layers.IPProtocolTCP)
	loop := ip(net.IPv6loopback, vip6, 64, layers.IPProtocolTCP)
	frag := ip(client6, vip6, 64, layers.IPProtocolIPv6Fragment)
	esp := ip(client6, vip6, 64, layers.IPProtocolESP)
	icmpIP := ip(client6, net.ParseIP("ff02::1:ff00:1"), 255, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(icmpIP)
	return map[string][]byte{
		"syn":                 serialize(t, eth(), syn, tcp(syn, true)),
		"ack":                 serialize(t, eth(), ack, tcp(ack, false), gopacket.Payload(bytes.Repeat([]byte{1}, 32))),
		"udp":                 serialize(t, eth(), udpIP, udp, gopacket.Payload([]byte("query"))),
		"ttl_zero":            serialize(t, eth(), hop0, tcp(hop0, true)),
		"martian_source":      serialize(t, eth(), loop, tcp(loop, true)),
		"ipv6_fragment":       serialize(t, eth(), frag, gopacket.Payload([]byte{6, 0, 0, 1, 0, 0, 0, 7, 0x9c, 0x40, 0, 80, 0, 0, 0, 0})),
		"unknown_next_header": serialize(t, eth(), esp, gopacket.Payload(bytes.Repeat([]byte{0}, 16))),
		"ndp":                 serialize(t, eth(), icmpIP, icmp, gopacket.Payload(make([]byte, 20))),
		"truncated":           serialize(t, eth(), gopacket.Payload([]byte{0x60, 0, 0, 0, 0, 20, 6})),
	}
}

func pcapOf(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	for i, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestReplayIPv6Frames: a capture of IPv6 frames replayed against an IPv4
// table does not crash, forwards none of them, and counts every one under
// a drop reason: the parser's own for what IPVS would refuse too (hop
// limit 0, a loopback source, fragments, ESP), the dataplane's for the
// rest. The drops add up to the frames in.
func TestReplayIPv6Frames(t *testing.T) {
	fs := frames6(t)
	var in [][]byte
	for _, f := range fs {
		in = append(in, f)
	}
	var out bytes.Buffer
	sum, err := Run(table(vs.Route, vs.TCP, 80), bytes.NewReader(pcapOf(t, in)), &out, Options{MAC: [6]byte(dirMAC), Addr: netip.AddrFrom4([4]byte(dirAddr))})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %+v", sum)
	if sum.In != len(in) || sum.Forwarded != 0 || sum.Replies != 0 || sum.Dropped != len(in) {
		t.Fatalf("summary %+v, want %d in, all dropped", sum, len(in))
	}
	var total uint64
	for _, n := range sum.Drops {
		total += n
	}
	if total != uint64(len(in)) {
		t.Errorf("drops %v add up to %d, want %d", sum.Drops, total, len(in))
	}
	for _, reason := range []string{"ttl_zero", "martian_source", "ipv6_fragment", "unknown_next_header"} {
		if sum.Drops[reason] != 1 {
			t.Errorf("drop %s: %d, want 1 (drops %v)", reason, sum.Drops[reason], sum.Drops)
		}
	}
}

// TestReplayIPv6Service: the capture's SYN and ACK to the
// IPv6 VIP go out by DR to the IPv6 real server, the packet itself
// unchanged but for the hop limit, one less, and the MACs rewritten.
func TestReplayIPv6Service(t *testing.T) {
	tbl := &vs.Table{}
	rs6 := netip.MustParseAddr("2001:2::11")
	if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 80}, Sched: "sh",
		Reals: []vs.Real{{Addr: rs6, Port: 80, Fwd: vs.Route, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	fs := frames6(t)
	in := [][]byte{fs["syn"], fs["ack"], fs["udp"]}
	var out bytes.Buffer
	sum, err := Run(tbl, bytes.NewReader(pcapOf(t, in)), &out, Options{MAC: [6]byte(dirMAC), Addr: netip.AddrFrom4([4]byte(dirAddr)),
		MACs: map[netip.Addr][6]byte{rs6: [6]byte(rsMAC)}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.In != 3 || sum.Forwarded != 2 || sum.Drops["no_service"] != 1 {
		t.Fatalf("summary %+v, want the SYN and ACK forwarded, the UDP datagram no_service", sum)
	}
	r, err := pcapgo.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range in[:2] {
		got, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("output frame %d: %v", i, err)
		}
		want = append([]byte(nil), want...)
		want[14+7]-- // the hop limit
		if !bytes.Equal(got[:6], rsMAC) || !bytes.Equal(got[6:12], dirMAC) || !bytes.Equal(got[12:], want[12:]) {
			t.Errorf("output frame %d is not the input with the MACs rewritten for DR:\n got %x\nwant %x", i, got, want)
		}
	}
}
