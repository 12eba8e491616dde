package director_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/vs"
)

// TestDirectorSYNRatePrefix6: the per-source SYN rate keys an IPv6
// client by its block prefix (Options.BlockPrefix6, default 64), as the
// blocklist does: 20 SYNs, each from another address of one /64, are
// one source over its burst of 3, while a /48 prefix makes the SYNs of
// two /64s of one /48 share it too.
func TestDirectorSYNRatePrefix6(t *testing.T) {
	vip6 := netip.MustParseAddr("2001:2:0:1::1")
	for _, tc := range []struct {
		prefix6 int
		nets    []string // the /64s the SYNs come from, in turn
		want    uint64   // SYNs over the source's rate
	}{
		{0, []string{"2001:2:0:77"}, 17},
		{0, []string{"2001:2:0:77", "2001:2:0:78"}, 14}, // two /64s: two sources
		{48, []string{"2001:2:0:77", "2001:2:0:78"}, 17},
		{128, []string{"2001:2:0:77"}, 0},
	} {
		n := platformtest.NewNetwork()
		n.Misuse = func(msg string) { t.Error(msg) }
		host := n.AddHost("director")
		host.AddIface("eth0", dirMAC, netip.MustParsePrefix("198.18.0.2/24"), "lan", 1).SetAddrs(
			netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("2001:2::2/64"))
		client := n.AddHost("client").AddIface("eth0", clientMAC, netip.MustParsePrefix("2001:2::10/64"), "lan", 1)
		n.AddHost("real").AddIface("eth0", [6]byte{2, 0, 0, 0, 0, 0x11}, netip.MustParsePrefix("2001:2::11/64"), "lan", 1)
		tbl := &vs.Table{}
		if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip6, Port: 80}, Sched: "rr",
			Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::11"), Port: 80, Weight: 1, Fwd: vs.Route}}}); err != nil {
			t.Fatal(err)
		}
		d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
			SYN: dataplane.SYNLimits{PerSource: 1, Burst: 3}, BlockPrefix6: tc.prefix6, BlockFor: time.Minute,
			Platform: host, Log: slog.New(slog.DiscardHandler)}, tbl)
		if err != nil {
			t.Fatal(err)
		}
		d.Start()
		for i := range 20 {
			src := netip.MustParseAddr(fmt.Sprintf("%s::%x:%x", tc.nets[i%len(tc.nets)], i+1, 7*i+3))
			client.Send(syn6(t, src, vip6, uint16(1000+i)))
		}
		// A worker counts a frame's drop with its receipt, in one flush.
		var drops uint64
		platformtest.Eventually(5*time.Second, func() bool {
			var rx uint64
			drops = 0
			for _, c := range d.Counters() {
				rx += c.RX.Load()
				drops += c.SYNDrops[dataplane.DropSYNRateSource].Load()
			}
			return rx >= 20
		})
		d.Close()
		if drops != tc.want {
			t.Errorf("block prefix %d, SYNs from %v: %d over the source's rate, want %d", tc.prefix6, tc.nets, drops, tc.want)
		}
	}
}

// syn6 is a TCP SYN from src to dst:80, to the director's MAC.
func syn6(t *testing.T, src, dst netip.Addr, sport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(dirMAC[:]), EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
