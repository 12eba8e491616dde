package director_test

import (
	"fmt"
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

// TestDirectorSyncedNAT6 is TestDirectorSyncedNAT for an IPv6 VS/NAT
// service on the pair's dual-stack LAN, run on director B as a backup: a
// synced connection's replies are filed at once by B's route to the
// client (on-link on eth0, its MAC resolved by neighbour discovery on
// demand: the first connection waits for it, the second finds it known),
// so a real server's reply before any client packet is rewritten to
// [VIP]:80 and sent to the client's MAC. The first client packet then
// files the hop it came by (a router's MAC in front of the client), and
// later replies go there.
func TestDirectorSyncedNAT6(t *testing.T) {
	vip6, rip := netip.MustParseAddr("2001:2:0:1::1"), netip.MustParseAddr("2001:2::11")
	client := netip.MustParseAddr("2001:2::10")
	p := newPair(t, rip.String())
	router := p.net.AddHost("router").AddIface("eth0", [6]byte{0x02, 0, 0, 0, 0, 0x99}, netip.Prefix{}, "lan", 1)
	svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip6, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: rip, Port: 8080, Weight: 1, Fwd: vs.Masq}}}
	d := p.start(p.b, table(t, svc))
	install := func(cport uint16) {
		t.Helper()
		c := ipvssync.Conn{Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagMasq, State: ipvssync.TCPEstablished, CPort: cport, VPort: 80, DPort: 8080,
			Timeout: 900, CAddr: client, VAddr: vip6, DAddr: rip}
		if res, drop := d.InstallSynced(&c, 3); drop != dataplane.SyncOK || res != conntrack.SyncInserted {
			t.Fatalf("InstallSynced: %v %v", res, drop)
		}
	}
	rs := p.reals[rip]
	replyDrops := func() uint64 {
		var n uint64
		for _, c := range d.Counters() {
			n += c.Drops[dataplane.DropReplyNoConnection].Load()
		}
		return n
	}
	// reply sends a reply of connection cport and checks the one frame it
	// became at to.
	reply := func(cport uint16, to *platformtest.Iface, what string) {
		t.Helper()
		rs.Send(tcp6(t, rs.MAC, dirMACB, rip, client, 8080, cport, false, false))
		var back [][]byte
		platformtest.Eventually(2*time.Second, func() bool { back = append(back, to.Recv()...); return len(back) > 0 })
		if len(back) != 1 {
			t.Fatalf("%s: %d frames arrived, want 1 (reply_no_connection drops %d)", what, len(back), replyDrops())
		}
		pk := gopacket.NewPacket(back[0], layers.LayerTypeEthernet, gopacket.Default)
		eth, _ := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if eth == nil || ip == nil || tcp == nil {
			t.Fatalf("%s: frame %x is not Ethernet/IPv6/TCP", what, back[0])
		}
		if [6]byte(eth.SrcMAC) != dirMACB || [6]byte(eth.DstMAC) != to.MAC || ip.SrcIP.String() != vip6.String() ||
			ip.DstIP.String() != client.String() || ip.HopLimit != 63 || tcp.SrcPort != 80 || tcp.DstPort != layers.TCPPort(cport) {
			t.Fatalf("%s: %s -> %s, [%v]:%d -> [%v]:%d hop limit %d; want B's MAC to %x, from [%v]:80 to [%v]:%d, hop limit 63",
				what, eth.SrcMAC, eth.DstMAC, ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort, ip.HopLimit, to.MAC, vip6, client, cport)
		}
	}
	install(6200)
	if !platformtest.Eventually(2*time.Second, func() bool { return d.CT.ReverseLen() == 1 }) {
		t.Fatal("the first synced IPv6 connection's replies were never filed")
	}
	reply(6200, p.client, "a reply before any client packet")
	install(6201)
	if n := d.CT.ReverseLen(); n != 2 {
		t.Fatalf("%d reply keys filed after the second install, want 2", n)
	}
	reply(6201, p.client, "the second connection's reply before any client packet")

	// The first client packet, through a router: forwarded to the real
	// server's address and port, and the replies follow it to the
	// router's MAC.
	router.Send(tcp6(t, router.MAC, dirMACB, client, vip6, 6200, 80, false, false))
	got := p.recv(rip, 1)
	pk := gopacket.NewPacket(got[0], layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil || ip.DstIP.String() != rip.String() || tcp.DstPort != 8080 || tcp.SrcPort != 6200 {
		t.Fatalf("real server got %x, want a segment to [%v]:8080 from port 6200", got[0], rip)
	}
	for i := range 2 {
		reply(6200, router, fmt.Sprint("reply ", i, " after the client's packet"))
	}
	if n := replyDrops(); n != 0 {
		t.Errorf("%d reply_no_connection drops, want none", n)
	}
}
