package director_test

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// segment is a TCP segment from the client's sport to vip:80 with the
// given flags, addressed to the director's MAC.
func segment(t *testing.T, sport uint16, synFlag, ack bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(dirMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IPv4(198, 18, 0, 10), DstIP: vip.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: synFlag, ACK: ack, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDirectorSync: StartSync gives the running workers queues and the
// settings decide what they queue; SetSyncSettings changes them at once;
// StopSync stops the queuing; InstallSynced puts an entry in the table
// that the workers forward.
func TestDirectorSync(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	resolved(t, d)
	qs, err := d.StartSync(ipvssync.Settings{Threshold: 2}, 64)
	if err != nil || len(qs) != 1 {
		t.Fatalf("StartSync: %d queues, %v", len(qs), err)
	}
	q := qs[0]
	var rec ipvssync.Record
	popped := func(want int) bool {
		n := 0
		ok := platformtest.Eventually(2*time.Second, func() bool {
			for q.Pop(&rec) {
				n++
			}
			return n >= want
		})
		time.Sleep(20 * time.Millisecond)
		for q.Pop(&rec) {
			n++
		}
		return ok && n == want
	}
	open := func(sport uint16, acks int) {
		l.client.Send(segment(t, sport, true, false))
		for range acks {
			l.client.Send(segment(t, sport, false, true))
		}
		l.collect(1 + acks)
	}
	// sync_threshold "2 0": sent at the 2nd packet (the first ACK).
	open(6000, 2)
	if !popped(1) || rec.CPort != 6000 || rec.State != ipvssync.TCPEstablished {
		t.Fatalf("threshold 2: record %+v", rec)
	}
	// Threshold 3 from now: the 2nd packet no longer sends, the 3rd does.
	d.SetSyncSettings(ipvssync.Settings{Threshold: 3})
	open(6001, 1)
	if !popped(0) {
		t.Fatal("threshold 3 sent at the 2nd packet")
	}
	l.client.Send(segment(t, 6001, false, true))
	l.collect(1)
	if !popped(1) || rec.CPort != 6001 {
		t.Fatalf("threshold 3: record %+v", rec)
	}
	d.StopSync()
	open(6002, 3)
	if !popped(0) {
		t.Fatal("records queued after StopSync")
	}
	// A synced connection the director never saw: forwarded at once.
	c := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished, CPort: 6100, VPort: 80, DPort: 80,
		Timeout: 900, CAddr: netip.MustParseAddr("198.18.0.10"), VAddr: vip, DAddr: netip.MustParseAddr("198.18.0.11")}
	if _, drop := d.InstallSynced(&c, 3); drop != dataplane.SyncOK {
		t.Fatalf("InstallSynced: %v", drop)
	}
	l.client.Send(segment(t, 6100, false, true))
	if got := l.collect(1); len(got["198.18.0.11"]) != 1 {
		t.Fatalf("the synced connection's ACK reached %v", got)
	}
}

// TestDirectorSyncedNAT: a backup installs VS/NAT connections it never
// saw from sync messages. Their replies are filed at once by the route to
// the client (here on-link on eth0, its MAC resolved on demand: the first
// connection waits for it, the second finds it known): a real server's
// reply before any client packet is rewritten to VIP:80 and sent to the
// client's MAC. The first client packet then files the hop it came by
// (here a router's MAC in front of the client), and later replies go
// there.
func TestDirectorSyncedNAT(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	router := l.net.AddHost("router").AddIface("eth0", [6]byte{0x02, 0, 0, 0, 0, 0x99}, netip.Prefix{}, "lan", 1)
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 8080, Weight: 1, Fwd: vs.Masq}}}
	d := l.start([]string{"eth0"}, table(t, svc))
	resolved(t, d)
	client, rip := netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.11")
	install := func(cport uint16) {
		t.Helper()
		c := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagMasq, State: ipvssync.TCPEstablished, CPort: cport, VPort: 80, DPort: 8080,
			Timeout: 900, CAddr: client, VAddr: vip, DAddr: rip}
		if res, drop := d.InstallSynced(&c, 3); drop != dataplane.SyncOK || res != conntrack.SyncInserted {
			t.Fatalf("InstallSynced: %v %v", res, drop)
		}
	}
	rs := l.reals["198.18.0.11"]
	rsMAC := [6]byte{0x02, 0, 0, 0, 0xee, 1}
	replyDrops := func() uint64 {
		var n uint64
		for _, c := range d.Counters() {
			n += c.Drops[dataplane.DropReplyNoConnection].Load()
		}
		return n
	}
	// reply sends a reply of connection cport and returns the one frame it
	// became at to.
	reply := func(cport uint16, to *platformtest.Iface, what string) {
		t.Helper()
		rs.Send(tcpFrom(t, rsMAC, dirMAC, rip, client, 8080, cport, false))
		var back [][]byte
		platformtest.Eventually(2*time.Second, func() bool { back = append(back, to.Recv()...); return len(back) > 0 })
		if len(back) != 1 {
			t.Fatalf("%s: %d frames arrived, want 1 (reply_no_connection drops %d)", what, len(back), replyDrops())
		}
		eth, ips, tcp := decode(t, back[0])
		if [6]byte(eth.SrcMAC) != dirMAC || [6]byte(eth.DstMAC) != to.MAC || ips[0].SrcIP.String() != vip.String() ||
			tcp.SrcPort != 80 || tcp.DstPort != layers.TCPPort(cport) {
			t.Fatalf("%s: %s -> %s, %v:%d -> %d; want the director's MAC to %x, from %v:80 to %d", what, eth.SrcMAC, eth.DstMAC, ips[0].SrcIP, tcp.SrcPort, tcp.DstPort, to.MAC, vip, cport)
		}
	}
	install(6200)
	if !platformtest.Eventually(2*time.Second, func() bool { return d.CT.ReverseLen() == 1 }) {
		t.Fatal("the first synced connection's replies were never filed")
	}
	reply(6200, l.client, "a reply before any client packet")
	// The client's MAC is known now: the next connection's replies are
	// filed as it is installed.
	install(6201)
	if n := d.CT.ReverseLen(); n != 2 {
		t.Fatalf("%d reply keys filed after the second install, want 2", n)
	}
	reply(6201, l.client, "the second connection's reply before any client packet")

	// The first client packet, through a router: forwarded to the real
	// server's port, and the replies follow it to the router's MAC.
	f := segment(t, 6200, false, true)
	copy(f[6:12], router.MAC[:])
	router.Send(f)
	got := l.collect(1)["198.18.0.11"]
	if len(got) != 1 {
		t.Fatalf("the real server got %d frames of the synced connection", len(got))
	}
	if _, ips, tcp := decode(t, got[0]); ips[0].DstIP.String() != "198.18.0.11" || tcp.DstPort != 8080 || tcp.SrcPort != 6200 {
		t.Fatalf("real server got %v:%d from port %d, want 198.18.0.11:8080 from 6200", ips[0].DstIP, tcp.DstPort, tcp.SrcPort)
	}
	for i := range 2 {
		reply(6200, router, fmt.Sprint("reply ", i, " after the client's packet"))
	}
	if n := replyDrops(); n != 0 {
		t.Errorf("%d reply_no_connection drops, want none", n)
	}
}
