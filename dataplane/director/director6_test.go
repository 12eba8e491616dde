package director_test

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/vs"
)

// TestDirectorUnreachableReal6: an IPv6 tunnel dest with no route is
// accepted, unreachable with the reason, and logged by its own address.
func TestDirectorUnreachableReal6(t *testing.T) {
	l := newLab(t, true)
	far := "2001:2:0:200::5"
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Tunnel, far)))
	ds := d.Snapshot().Services[0].Dests[0]
	if ds.Slot != -1 || !strings.Contains(ds.Unreachable, far) {
		t.Fatalf("dest %+v: want no slot and the reason", ds)
	}
	if log := l.log.String(); !strings.Contains(log, "real server unreachable") || !strings.Contains(log, "real="+far) {
		t.Fatalf("no warning naming the unreachable IPv6 real server %s:\n%s", far, log)
	}
}

// TestDirectorLocalNode6: the local node of an IPv6 service. A real
// server that is the director's own IPv6 address gets its connections'
// first packet through the local path (the IPv6 packet unchanged, without
// its Ethernet header), and their later frames are passed by the
// steering program's IPv6 flow map to the interface's stack without a
// worker seeing them; housekeeping moves the connection's state from the
// passed frames' flags and counts them in (40 bytes plus the payload
// length each).
func TestDirectorLocalNode6(t *testing.T) {
	n := platformtest.NewNetwork()
	n.Misuse = func(msg string) { t.Error(msg) }
	host := n.AddHost("director")
	host.AddIface("eth0", dirMAC, netip.MustParsePrefix("198.18.0.2/24"), "lan", 1).SetAddrs(
		netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("2001:2::2/64"))
	client := n.AddHost("client").AddIface("eth0", clientMAC, netip.MustParsePrefix("2001:2::10/64"), "lan", 1)
	vip6 := netip.MustParseAddr("2001:2:0:1::1")
	tbl := &vs.Table{}
	if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip6, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::2"), Port: 80, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Platform: host, Log: slog.New(slog.NewTextHandler(&log, nil))}, tbl)
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() { d.Close() })
	ds := d.Snapshot().Services[0].Dests[0]
	if !ds.Local || ds.Slot != -1 || ds.Unreachable != "" {
		t.Fatalf("dest %+v: want Local, no slot, reachable", ds)
	}
	seg := func(sport uint16, syn, ack bool) []byte {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(dirMAC[:]), EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("2001:2::10"), DstIP: vip6.AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: syn, ACK: ack, Seq: 1, Window: 1000}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload("GET /")); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	first := seg(1000, true, false)
	client.Send(first)
	var local [][]byte
	platformtest.Eventually(2*time.Second, func() bool { local = append(local, host.LocalRecv()...); return len(local) >= 1 })
	if len(local) != 1 || !bytes.Equal(local[0], first[14:]) {
		t.Fatalf("the director's stack got %x through the local path, want the SYN's IPv6 packet %x", local, first[14:])
	}
	var tot dataplane.Totals
	for _, c := range d.Counters() {
		tot.Add(c)
	}
	if tot.LocalFlows != 1 || tot.LocalDelivered != 1 || tot.LocalFull != 0 {
		t.Errorf("local counters: flows %d, delivered %d, full %d; want 1, 1, 0", tot.LocalFlows, tot.LocalDelivered, tot.LocalFull)
	}
	host.Iface("eth0").Recv()
	ack := seg(1000, false, true)
	client.Send(ack)
	client.Send(ack)
	if in := host.Iface("eth0").Recv(); len(in) != 2 {
		t.Errorf("eth0's stack got %d frames, want the 2 passed", len(in))
	}
	if st, _ := d.Steering(); st.PassLocal != 2 {
		t.Errorf("steering passed %d frames as local, want 2", st.PassLocal)
	}
	k := conntrack.Key{CAddr: netip.MustParseAddr("2001:2::10").As16(), VAddr: vip6.As16(), CPort: 1000, VPort: 80, Proto: 6}
	if !platformtest.Eventually(6*time.Second, func() bool { c, ok := d.CT.Lookup(&k); return ok && c.State == conntrack.Established }) {
		t.Fatal("the local IPv6 connection did not become ESTABLISHED from its passed ACKs")
	}
	var tr dataplane.Traffic
	platformtest.Eventually(6*time.Second, func() bool {
		tr = dataplane.SumTraffic(d.Counters(), func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(ds.ID) })
		return tr.InPkts == 3
	})
	if want := uint64(3 * (len(first) - 14)); tr.Conns != 1 || tr.InPkts != 3 || tr.InBytes != want {
		t.Errorf("local node traffic %+v: want 1 connection, 3 packets, %d bytes in", tr, want)
	}
}
