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
