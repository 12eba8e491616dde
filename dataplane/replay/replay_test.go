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

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

var (
	dirMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	rsMAC     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	vip       = net.IP{198, 19, 0, 1}
	client    = net.IP{198, 18, 0, 10}
	rsAddr    = net.IP{198, 18, 0, 11}
	dirAddr   = net.IP{198, 18, 0, 2}
)

func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testsupport.Build(t, ls...)
}

// clientPkt is the IPv4 packet (no Ethernet) a client sends to the VIP.
func clientLayers(proto string, sport uint16, syn, ack bool, payload int) []gopacket.SerializableLayer {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, TOS: 0x28, Flags: layers.IPv4DontFragment, Id: 7, SrcIP: client, DstIP: vip}
	var l4 gopacket.SerializableLayer
	if proto == "udp" {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 53}
		u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		ip.Protocol = layers.IPProtocolTCP
		tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: syn, ACK: ack, Seq: 100, Window: 512}
		tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	return []gopacket.SerializableLayer{ip, l4, gopacket.Payload(bytes.Repeat([]byte{0xab}, payload))}
}

// natLayers is a TCP packet src:sport -> dst:dport as the VS/NAT
// fixtures need it, its checksums computed in full by gopacket.
func natLayers(src, dst net.IP, sport, dport uint16, syn, ack bool, payload int) []gopacket.SerializableLayer {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, TOS: 0x28, Flags: layers.IPv4DontFragment, Id: 7, SrcIP: src, DstIP: dst, Protocol: layers.IPProtocolTCP}
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: 100, Window: 512}
	tc.SetNetworkLayerForChecksum(ip)
	return []gopacket.SerializableLayer{ip, tc, gopacket.Payload(bytes.Repeat([]byte{0xab}, payload))}
}

// hopped is ls, an IPv4 packet's layers, as the director forwards it: its
// TTL one less (decrement_ttl), its header checksum computed afresh.
func hopped(ls []gopacket.SerializableLayer) []gopacket.SerializableLayer {
	ls[0].(*layers.IPv4).TTL--
	return ls
}

func withEth(src, dst net.HardwareAddr, ls []gopacket.SerializableLayer) []gopacket.SerializableLayer {
	return append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}}, ls...)
}

// tunnelled is the expected VS/TUN output, built independently of encap:
// an outer IPv4 header (director -> real server, proto 4, the inner TTL,
// TOS and DF, as ip_vs_tunnel_xmit copies them, ID 0 with DF) around the
// client's unchanged packet.
func tunnelled(t *testing.T, inner []byte) []byte {
	outer := &layers.IPv4{Version: 4, IHL: 5, TTL: inner[8], TOS: 0x28, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolIPv4, SrcIP: dirAddr, DstIP: rsAddr}
	return serialize(t, &layers.Ethernet{SrcMAC: dirMAC, DstMAC: rsMAC, EthernetType: layers.EthernetTypeIPv4}, outer, gopacket.Payload(inner))
}

func table(fwd vs.Fwd, proto vs.Proto, port uint16) *vs.Table {
	t := &vs.Table{}
	if err := t.AddService(vs.Service{Key: vs.Key{Proto: proto, Addr: netip.AddrFrom4([4]byte(vip)), Port: port}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.AddrFrom4([4]byte(rsAddr)), Port: port, Fwd: fwd, Weight: 1}}}); err != nil {
		panic(err)
	}
	return t
}

// TestFixtures pairs input packets with their verdict and the exact bytes
// the director transmits, in the style of Katran's test fixtures.
func TestFixtures(t *testing.T) {
	type fixture struct {
		name    string
		table   *vs.Table
		in      [][]byte // frames pushed in order
		out     [][]byte // frames expected out, in order
		drops   map[string]uint64
		replies int
	}
	synIn := serialize(t, withEth(clientMAC, dirMAC, clientLayers("tcp", 40000, true, false, 0))...)
	ackIn := serialize(t, withEth(clientMAC, dirMAC, clientLayers("tcp", 40000, false, true, 32))...)
	strayAck := serialize(t, withEth(clientMAC, dirMAC, clientLayers("tcp", 40001, false, true, 0))...)
	udpIn := serialize(t, withEth(clientMAC, dirMAC, clientLayers("udp", 5353, false, false, 20))...)
	synDR := serialize(t, withEth(dirMAC, rsMAC, hopped(clientLayers("tcp", 40000, true, false, 0)))...)
	ackDR := serialize(t, withEth(dirMAC, rsMAC, hopped(clientLayers("tcp", 40000, false, true, 32)))...)
	synTUN := tunnelled(t, serialize(t, hopped(clientLayers("tcp", 40000, true, false, 0))...))
	ackTUN := tunnelled(t, serialize(t, hopped(clientLayers("tcp", 40000, false, true, 32))...))
	udpTUN := tunnelled(t, serialize(t, hopped(clientLayers("udp", 5353, false, false, 20))...))
	arp := serialize(t, &layers.Ethernet{SrcMAC: clientMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: clientMAC, SourceProtAddress: client, DstHwAddress: make([]byte, 6), DstProtAddress: vip})
	big := serialize(t, withEth(clientMAC, dirMAC, clientLayers("tcp", 40002, true, false, 1460))...)
	frags, fragsDR := udpFragments(t)

	// VS/NAT: the service's port 80 is the real server's 8080; its
	// replies come back through the director. The expected frames are
	// built with checksums computed in full, so byte equality shows the
	// incremental updates right.
	natTable := &vs.Table{}
	if err := natTable.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.AddrFrom4([4]byte(vip)), Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.AddrFrom4([4]byte(rsAddr)), Port: 8080, Fwd: vs.Masq, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	synNAT := serialize(t, withEth(dirMAC, rsMAC, hopped(natLayers(client, rsAddr, 40000, 8080, true, false, 0)))...)
	synAckIn := serialize(t, withEth(rsMAC, dirMAC, natLayers(rsAddr, client, 8080, 40000, true, true, 0))...)
	synAckOut := serialize(t, withEth(dirMAC, clientMAC, hopped(natLayers(vip, client, 80, 40000, true, true, 0)))...)
	ackNAT := serialize(t, withEth(dirMAC, rsMAC, hopped(natLayers(client, rsAddr, 40000, 8080, false, true, 32)))...)
	dataIn := serialize(t, withEth(rsMAC, dirMAC, natLayers(rsAddr, client, 8080, 40000, false, true, 700))...)
	dataOut := serialize(t, withEth(dirMAC, clientMAC, hopped(natLayers(vip, client, 80, 40000, false, true, 700)))...)

	fixtures := []fixture{
		{name: "nat/both-directions", table: natTable, in: [][]byte{synIn, synAckIn, ackIn, dataIn},
			out: [][]byte{synNAT, synAckOut, ackNAT, dataOut}},
		{name: "nat/reply-without-connection", table: natTable, in: [][]byte{dataIn}, drops: map[string]uint64{"reply_no_connection": 1}},
		{name: "dr/syn-then-ack", table: table(vs.Route, vs.TCP, 80), in: [][]byte{synIn, ackIn}, out: [][]byte{synDR, ackDR}},
		{name: "tun/syn-then-ack", table: table(vs.Tunnel, vs.TCP, 80), in: [][]byte{synIn, ackIn}, out: [][]byte{synTUN, ackTUN}},
		{name: "tun/udp", table: table(vs.Tunnel, vs.UDP, 53), in: [][]byte{udpIn}, out: [][]byte{udpTUN}},
		{name: "dr/ack-without-connection", table: table(vs.Route, vs.TCP, 80), in: [][]byte{strayAck}, drops: map[string]uint64{"no_connection": 1}},
		{name: "dr/arp-is-not-ours", table: table(vs.Route, vs.TCP, 80), in: [][]byte{arp}, drops: map[string]uint64{"not_ipv4": 1}},
		{name: "dr/truncated", table: table(vs.Route, vs.TCP, 80), in: [][]byte{synIn[:30]}, drops: map[string]uint64{"truncated_ip": 1}},
		{name: "dr/wrong-port", table: table(vs.Route, vs.TCP, 8080), in: [][]byte{synIn}, drops: map[string]uint64{"no_service": 1}},
		{name: "tun/df-too-big-gets-icmp", table: table(vs.Tunnel, vs.TCP, 80), in: [][]byte{big}, replies: 1, drops: map[string]uint64{"frag_needed": 1}},
		// A later fragment before its first waits for it, then follows it.
		{name: "dr/udp-fragments-out-of-order", table: table(vs.Route, vs.UDP, 53), in: [][]byte{frags[1], frags[0], frags[2]},
			out: [][]byte{fragsDR[0], fragsDR[1], fragsDR[2]}},
	}
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			var in bytes.Buffer
			w := pcapgo.NewWriter(&in)
			w.WriteFileHeader(65536, layers.LinkTypeEthernet)
			ts := time.Unix(1700000000, 0)
			for i, fr := range f.in {
				w.WritePacket(gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: len(fr)}, fr)
			}
			var out bytes.Buffer
			sum, err := Run(f.table, &in, &out, Options{MAC: [6]byte(dirMAC), Addr: netip.AddrFrom4([4]byte(dirAddr)), MTU: 1500,
				MACs: map[netip.Addr][6]byte{netip.AddrFrom4([4]byte(rsAddr)): [6]byte(rsMAC)}})
			if err != nil {
				t.Fatal(err)
			}
			r, err := pcapgo.NewReader(&out)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]byte
			for {
				d, _, err := r.ReadPacketData()
				if err != nil {
					break
				}
				got = append(got, d)
			}
			if sum.Replies != f.replies {
				t.Errorf("replies %d, want %d", sum.Replies, f.replies)
			}
			want := f.out
			if f.replies > 0 {
				// The ICMP reply's content is checked by encap's tests; here
				// only its presence and kind.
				if len(got) != 1 {
					t.Fatalf("got %d frames, want the ICMP reply", len(got))
				}
				p := gopacket.NewPacket(got[0], layers.LayerTypeEthernet, gopacket.Default)
				if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); !ok || ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) {
					t.Fatalf("reply is not ICMP fragmentation-needed: %v", p)
				}
				got = nil
			}
			if len(got) != len(want) {
				t.Fatalf("got %d frames out, want %d (summary %+v)", len(got), len(want), sum)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("frame %d:\n got  %x\n want %x", i, got[i], want[i])
				}
			}
			for reason, n := range f.drops {
				if sum.Drops[reason] != n {
					t.Errorf("drop %s = %d, want %d (all: %v)", reason, sum.Drops[reason], n, sum.Drops)
				}
			}
		})
	}
}

// udpFragments is a 3000-byte UDP datagram to the VIP cut into three
// fragments, as the client sends them and as DR sends them on (each with
// its TTL one less).
func udpFragments(t *testing.T) (in, dr [][]byte) {
	ls := clientLayers("udp", 5353, false, false, 3000)
	ls[0].(*layers.IPv4).Flags = 0
	whole := serialize(t, ls...)
	for off := 20; off < len(whole); off += 1480 {
		end := min(off+1480, len(whole))
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 63, TOS: 0x28, Id: 7, Protocol: layers.IPProtocolUDP, SrcIP: client, DstIP: vip,
			FragOffset: uint16((off - 20) / 8)}
		if end < len(whole) {
			ip.Flags = layers.IPv4MoreFragments
		}
		in = append(in, serialize(t, withEth(clientMAC, dirMAC, []gopacket.SerializableLayer{ip, gopacket.Payload(whole[off:end])})...))
		dr = append(dr, serialize(t, withEth(dirMAC, rsMAC, hopped([]gopacket.SerializableLayer{ip, gopacket.Payload(whole[off:end])}))...))
	}
	return in, dr
}

func TestRunRejectsBadInput(t *testing.T) {
	tbl := table(vs.Route, vs.TCP, 80)
	if _, err := Run(tbl, bytes.NewReader([]byte("not a pcap")), &bytes.Buffer{}, Options{Addr: netip.MustParseAddr("198.18.0.2")}); err == nil {
		t.Error("garbage accepted as pcap")
	}
	if _, err := Run(tbl, bytes.NewReader(nil), &bytes.Buffer{}, Options{}); err == nil {
		t.Error("missing director address accepted")
	}
	_ = dataplane.SyntheticMAC
}
