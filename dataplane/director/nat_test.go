package director_test

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/vs"
)

// tcpFrom is a TCP segment src:sport -> dst:dport between two MACs, its
// checksums computed in full.
func tcpFrom(t *testing.T, from, to [6]byte, src, dst netip.Addr, sport, dport uint16, synack bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(from[:]), DstMAC: net.HardwareAddr(to[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: synack, ACK: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDirectorForwardsNAT runs a whole director with a VS/NAT service on
// the fake platform: the client's SYN reaches the real server at its own
// address and port 8080; the real server's SYN-ACK is steered by its
// source, rewritten to VIP:80 and sent to the client's MAC; a frame from
// the real server to the director's own address (a health check's
// answer) stays the kernel's.
func TestDirectorForwardsNAT(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 8080, Weight: 1, Fwd: vs.Masq}}}
	d := l.start([]string{"eth0"}, table(t, svc))
	resolved(t, d)
	l.client.Send(syn(t, dirMAC, vip, 1000))
	got := l.collect(1)["198.18.0.11"]
	_, ips, tcp := decode(t, got[0])
	if ips[0].DstIP.String() != "198.18.0.11" || tcp.DstPort != 8080 || tcp.SrcPort != 1000 {
		t.Fatalf("real server got %v:%d from port %d, want 198.18.0.11:8080 from 1000", ips[0].DstIP, tcp.DstPort, tcp.SrcPort)
	}
	rs := l.reals["198.18.0.11"]
	client := netip.MustParseAddr("198.18.0.10")
	rsMAC := [6]byte{0x02, 0, 0, 0, 0xee, 1}
	rs.Send(tcpFrom(t, rsMAC, dirMAC, netip.MustParseAddr("198.18.0.11"), client, 8080, 1000, true))
	var back [][]byte
	platformtest.Eventually(2*time.Second, func() bool { back = append(back, l.client.Recv()...); return len(back) > 0 })
	if len(back) != 1 {
		t.Fatalf("client got %d frames, want the SYN-ACK", len(back))
	}
	eth, ips, tcp := decode(t, back[0])
	if [6]byte(eth.SrcMAC) != dirMAC || [6]byte(eth.DstMAC) != clientMAC || ips[0].SrcIP.String() != vip.String() || tcp.SrcPort != 80 || tcp.DstPort != 1000 {
		t.Fatalf("client got %s -> %s, %v:%d -> %d; want the director's MAC to its own, from %v:80", eth.SrcMAC, eth.DstMAC, ips[0].SrcIP, tcp.SrcPort, tcp.DstPort, vip)
	}
	before, _ := d.Steering()
	rs.Send(tcpFrom(t, rsMAC, dirMAC, netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.2"), 8080, 45000, true))
	if !platformtest.Eventually(2*time.Second, func() bool { st, _ := d.Steering(); return st.PassNoService == before.PassNoService+1 }) {
		st, _ := d.Steering()
		t.Errorf("a real server's frame to the director: steering %+v, before %+v; want it passed to the kernel", st, before)
	}
	var out uint64
	for _, c := range d.Counters() {
		out += c.Service(d.Snapshot().Services[0].ID).OutPkts
	}
	if out != 1 {
		t.Errorf("service counted %d packets out, want 1", out)
	}
}

// TestDirectorWithoutNATIndex: a director started without the reply
// index refuses VS/NAT real servers, at start and in a later change.
func TestDirectorWithoutNATIndex(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	nat := table(t, service("rr", vs.Masq, "198.18.0.11"))
	_, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512, NoNAT: true,
		Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil))}, nat)
	if err == nil || !strings.Contains(err.Error(), "table.nat: false") {
		t.Fatalf("New without the index and a NAT server: %v", err)
	}
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512, NoNAT: true,
		Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil))}, table(t, service("rr", vs.Route, "198.18.0.11")))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Apply(nat); err == nil || !strings.Contains(err.Error(), "masquerading (-m)") {
		t.Fatalf("Apply of a NAT server without the index: %v", err)
	}
}

// TestDirectorNATTwoInterfaces runs the LVS manual's two-interface NAT
// layout: the director receives on eth0 (clients) and eth1 (real servers,
// their default route via the director). The client's SYN, received on
// eth0, leaves eth1 for the real server, rewritten to its address and
// port 8080; the server's SYN-ACK, received on eth1, leaves eth0 for the
// client from VIP:80. Each direction crosses from one interface's worker
// to the other's receiving socket.
func TestDirectorNATTwoInterfaces(t *testing.T) {
	l := newLab(t, true, "198.18.1.11")
	rip := netip.MustParseAddr("198.18.1.11")
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: rip, Port: 8080, Weight: 1, Fwd: vs.Masq}}}
	d := l.start([]string{"eth0", "eth1"}, table(t, svc))
	resolved(t, d)
	client := netip.MustParseAddr("198.18.0.10")
	rs := l.reals["198.18.1.11"]
	rsMAC := [6]byte{0x02, 0, 0, 0, 0xee, 1}
	for i := range 3 {
		port := uint16(1000 + i)
		l.client.Send(syn(t, dirMAC, vip, port))
		got := l.collect(1)["198.18.1.11"]
		eth, ips, tcp := decode(t, got[0])
		if [6]byte(eth.SrcMAC) != dirMAC1 || [6]byte(eth.DstMAC) != rsMAC || ips[0].SrcIP.String() != client.String() ||
			ips[0].DstIP.String() != rip.String() || tcp.DstPort != 8080 || tcp.SrcPort != layers.TCPPort(port) {
			t.Fatalf("real server got %s -> %s, %v:%d -> %v:%d; want eth1's MAC to its own, %v:%d -> %v:8080",
				eth.SrcMAC, eth.DstMAC, ips[0].SrcIP, tcp.SrcPort, ips[0].DstIP, tcp.DstPort, client, port, rip)
		}
		rs.Send(tcpFrom(t, rsMAC, dirMAC1, rip, client, 8080, port, true))
		var back [][]byte
		platformtest.Eventually(2*time.Second, func() bool { back = append(back, l.client.Recv()...); return len(back) > 0 })
		if len(back) != 1 {
			t.Fatalf("client got %d frames, want the SYN-ACK", len(back))
		}
		eth, ips, tcp = decode(t, back[0])
		if [6]byte(eth.SrcMAC) != dirMAC || [6]byte(eth.DstMAC) != clientMAC || ips[0].SrcIP.String() != vip.String() || tcp.SrcPort != 80 || tcp.DstPort != layers.TCPPort(port) {
			t.Fatalf("client got %s -> %s, %v:%d -> %d; want eth0's MAC to its own, from %v:80", eth.SrcMAC, eth.DstMAC, ips[0].SrcIP, tcp.SrcPort, tcp.DstPort, vip)
		}
	}
	var out, noEgress uint64
	for _, c := range d.Counters() {
		out += c.Service(d.Snapshot().Services[0].ID).OutPkts
		noEgress += c.Drops[dataplane.DropNoEgress].Load()
	}
	if out != 3 || noEgress != 0 {
		t.Errorf("service counted %d packets out and %d no_egress drops, want 3 and 0", out, noEgress)
	}
}

// bigReply is a real server's TCP reply of payload bytes, with or without
// DF.
func bigReply(t *testing.T, from, to [6]byte, src, dst netip.Addr, sport, dport uint16, payload int, df bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(from[:]), DstMAC: net.HardwareAddr(to[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), ACK: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDirectorNATReplyTooBig: in the two-interface layout with a smaller
// MTU on the clients' side, a real server's reply with DF that does not
// fit gets ICMP fragmentation-needed back on eth1, from eth1's address,
// quoting the reply; one without DF reaches the client in two fragments
// from eth0.
func TestDirectorNATReplyTooBig(t *testing.T) {
	l := newLab(t, true, "198.18.1.11")
	l.dir.Iface("eth0").MTU = 1400
	rip := netip.MustParseAddr("198.18.1.11")
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: rip, Port: 8080, Weight: 1, Fwd: vs.Masq}}}
	d := l.start([]string{"eth0", "eth1"}, table(t, svc))
	resolved(t, d)
	client := netip.MustParseAddr("198.18.0.10")
	rs := l.reals["198.18.1.11"]
	rsMAC := [6]byte{0x02, 0, 0, 0, 0xee, 1}
	l.client.Send(syn(t, dirMAC, vip, 1000))
	l.collect(1)

	rs.Send(bigReply(t, rsMAC, dirMAC1, rip, client, 8080, 1000, 1400, true))
	var icmp [][]byte
	platformtest.Eventually(2*time.Second, func() bool { icmp = append(icmp, rs.Recv()...); return len(icmp) > 0 })
	if len(icmp) != 1 {
		t.Fatalf("real server got %d frames, want the ICMP error", len(icmp))
	}
	p := gopacket.NewPacket(icmp[0], layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if eth == nil || ip == nil || ic == nil || [6]byte(eth.SrcMAC) != dirMAC1 || ip.SrcIP.String() != "198.18.1.2" || ip.DstIP.String() != rip.String() ||
		ic.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || ic.Seq != 1400 {
		t.Fatalf("real server got %v; want fragmentation-needed (MTU 1400) from eth1's MAC and 198.18.1.2", p)
	}
	if q := ic.Payload; len(q) < 28 || netip.AddrFrom4([4]byte(q[12:16])) != rip || q[20] != 8080>>8 || q[21] != 8080&0xff {
		t.Fatalf("the ICMP error quotes % x, want the real server's reply from %v:8080", q, rip)
	}
	if got := l.client.Recv(); len(got) != 0 {
		t.Fatalf("client got %d frames of a reply that did not fit", len(got))
	}

	rs.Send(bigReply(t, rsMAC, dirMAC1, rip, client, 8080, 1000, 1400, false))
	var back [][]byte
	platformtest.Eventually(2*time.Second, func() bool { back = append(back, l.client.Recv()...); return len(back) >= 2 })
	if len(back) != 2 {
		t.Fatalf("client got %d frames, want two fragments", len(back))
	}
	for i, f := range back {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if eth == nil || ip == nil || [6]byte(eth.SrcMAC) != dirMAC || ip.SrcIP.String() != vip.String() || int(ip.Length) > 1400 ||
			(ip.Flags&layers.IPv4MoreFragments != 0) != (i == 0) {
			t.Fatalf("fragment %d: %v; want from eth0's MAC and the VIP, at most 1400 bytes", i, p)
		}
	}
}
