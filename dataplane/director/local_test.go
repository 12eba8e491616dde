package director_test

import (
	"bytes"
	"errors"
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

// own is the director's address in the lab: a real server there is the
// local node.
const own = "198.18.0.2"

// tcpTo is a TCP segment from the client's port sport to the VIP, with
// the given flags, addressed to the director's MAC.
func tcpTo(t *testing.T, sport uint16, ack, fin, rst bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(dirMAC[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(198, 18, 0, 10), DstIP: vip.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, ACK: ack, FIN: fin, RST: rst, Seq: 2, Ack: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload("GET /")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// localID is the dest ID of the director's own address in d's snapshot.
func localID(t *testing.T, d *director.Director) uint32 {
	t.Helper()
	for _, ds := range d.Snapshot().Services[0].Dests {
		if netip.AddrFrom4(ds.Addr).String() == own {
			if !ds.Local || ds.Slot != -1 || ds.Unreachable != "" {
				t.Fatalf("dest %s: %+v; want Local, no slot, reachable", own, ds)
			}
			return ds.ID
		}
	}
	t.Fatalf("no dest %s", own)
	return 0
}

func localTotals(d *director.Director) (tot dataplane.Totals) {
	for _, c := range d.Counters() {
		tot.Add(c)
	}
	return tot
}

// TestDirectorLocalNode: with three real servers and the director's own
// address as a fourth, rr sends every fourth connection to the
// director's stack: the first packet through the local path (unchanged,
// without its Ethernet header), and the later ones passed by the
// steering program to the interface's stack without a worker seeing
// them. Housekeeping moves the connection's state from the passed
// frames' flags and counts them in; a connection that expires is
// forgotten, so its next frame reaches a worker again.
func TestDirectorLocalNode(t *testing.T) {
	reals := []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"}
	l := newLab(t, false, reals...)
	clock := &conntrack.ManualClock{}
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil)), Clock: clock},
		table(t, service("rr", vs.Route, append(reals, own)...)))
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		d.Close()
		if s, p := l.dir.Open(); s != 0 || p != 0 {
			t.Errorf("after Close: %d sockets and %d programs still open", s, p)
		}
	})
	resolved(t, d)
	id := localID(t, d)
	if !strings.Contains(l.log.String(), "local node: connections to real servers on this host's addresses go to its own stack") {
		t.Errorf("no log line about the local node:\n%s", l.log.String())
	}
	// The lab's VIP is routed to the director, not one of its addresses.
	if strings.Count(l.log.String(), "local node: the VIP is not an address of this host") != 1 {
		t.Errorf("want one warning about the VIP:\n%s", l.log.String())
	}

	// 8 connections: 6 to the real servers, 2 to the director itself.
	syns := map[uint16][]byte{}
	for i := range 8 {
		sport := uint16(1000 + i)
		syns[sport] = syn(t, dirMAC, vip, sport)
		l.client.Send(syns[sport])
	}
	got := l.collect(6)
	for _, a := range reals {
		if len(got[a]) != 2 {
			t.Errorf("%s got %d SYNs, want 2 of 8 (rr over 4)", a, len(got[a]))
		}
	}
	var local [][]byte
	platformtest.Eventually(2*time.Second, func() bool { local = append(local, l.dir.LocalRecv()...); return len(local) >= 2 })
	if len(local) != 2 {
		t.Fatalf("the director's stack got %d packets through the local path, want 2", len(local))
	}
	var localPorts []uint16
	for _, pkt := range local {
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("local packet does not decode as IPv4/TCP: %v", p)
		}
		sp := uint16(tcp.SrcPort)
		localPorts = append(localPorts, sp)
		if !bytes.Equal(pkt, syns[sp][14:54]) {
			t.Errorf("port %d: the stack got %x, want the SYN's IPv4 packet unchanged %x", sp, pkt, syns[sp][14:54])
		}
	}
	tot := localTotals(d)
	if tot.LocalFlows != 2 || tot.LocalDelivered != 2 || tot.LocalFull != 0 {
		t.Errorf("local counters: flows %d, delivered %d, full %d; want 2, 2, 0", tot.LocalFlows, tot.LocalDelivered, tot.LocalFull)
	}
	if tot.Drops[dataplane.DropNoEgress] != 0 {
		t.Errorf("%d frames dropped as no_egress", tot.Drops[dataplane.DropNoEgress])
	}

	// The rest of each local connection passes to the kernel: eth0's
	// stack gets it, no worker does.
	rx := tot.RX
	l.dir.Iface("eth0").Recv()
	for _, sp := range localPorts {
		l.client.Send(tcpTo(t, sp, true, false, false))
		l.client.Send(tcpTo(t, sp, true, false, false))
	}
	if in := l.dir.Iface("eth0").Recv(); len(in) != 4 {
		t.Errorf("eth0's stack got %d frames, want the 4 passed", len(in))
	}
	st, _ := d.Steering()
	if st.PassLocal != 4 {
		t.Errorf("steering passed %d frames as local, want 4", st.PassLocal)
	}
	if now := localTotals(d).RX; now != rx {
		t.Errorf("workers received %d more frames, want none", now-rx)
	}

	// Housekeeping (once a second) applies the ACKs: both connections
	// go from SYN_RECV to ESTABLISHED (both counted active, as the
	// kernel counts pre-established states since 4.8), and their frames
	// are counted in.
	state := func(sp uint16) conntrack.State {
		k := conntrack.Key{CAddr: netip.MustParseAddr("198.18.0.10").As16(), VAddr: vip.As16(), CPort: sp, VPort: 80, Proto: 6}
		c, ok := d.CT.Lookup(&k)
		if !ok {
			return conntrack.None
		}
		return c.State
	}
	if !platformtest.Eventually(6*time.Second, func() bool {
		return state(localPorts[0]) == conntrack.Established && state(localPorts[1]) == conntrack.Established
	}) {
		t.Fatalf("local connections in %v and %v, want ESTABLISHED", state(localPorts[0]), state(localPorts[1]))
	}
	var tr dataplane.Traffic
	wantBytes := uint64(2*40 + 4*45)
	platformtest.Eventually(6*time.Second, func() bool {
		tr = dataplane.SumTraffic(d.Counters(), func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(id) })
		return tr.InPkts == 6
	})
	if tr.Conns != 2 || tr.InPkts != 6 || tr.InBytes != wantBytes {
		t.Errorf("local node traffic %+v: want 2 connections, 6 packets, %d bytes in", tr, wantBytes)
	}
	if a, i := d.Loads.Active(id), d.Loads.Inactive(id); a != 2 || i != 0 {
		t.Errorf("local node: %d active, %d inactive; want 2 and 0", a, i)
	}

	// A FIN moves one to FIN_WAIT (inactive).
	l.client.Send(tcpTo(t, localPorts[0], true, true, false))
	if !platformtest.Eventually(6*time.Second, func() bool { return d.Loads.Active(id) == 1 && d.Loads.Inactive(id) == 1 }) {
		t.Fatalf("after a FIN: %d active, %d inactive; want 1 and 1", d.Loads.Active(id), d.Loads.Inactive(id))
	}

	// Once the connections expire, their flows are forgotten: the next
	// frame reaches a worker, which drops an ACK without a connection.
	clock.Advance(16 * time.Minute)
	if !platformtest.Eventually(6*time.Second, func() bool {
		l.client.Send(tcpTo(t, localPorts[1], true, false, false))
		return localTotals(d).Drops[dataplane.DropNoConnection] > 0
	}) {
		t.Fatal("the expired connection's flow is still passed")
	}
}

// TestDirectorLocalFull: a connection the flow map has no room for is
// still served: the worker delivers every one of its packets itself.
func TestDirectorLocalFull(t *testing.T) {
	l := newLab(t, false)
	l.dir.SetLocalLimit(1)
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, own)))
	for _, sp := range []uint16{2000, 2001} {
		l.client.Send(syn(t, dirMAC, vip, sp))
	}
	if !platformtest.Eventually(2*time.Second, func() bool { return localTotals(d).LocalDelivered == 2 }) {
		t.Fatal("the SYNs did not reach the local path")
	}
	l.client.Send(tcpTo(t, 2000, true, false, false)) // passed by the program
	l.client.Send(tcpTo(t, 2001, true, false, false)) // through the worker
	var local [][]byte
	platformtest.Eventually(2*time.Second, func() bool { local = append(local, l.dir.LocalRecv()...); return len(local) >= 3 })
	tot := localTotals(d)
	if len(local) != 3 || tot.LocalFlows != 1 || tot.LocalFull != 1 || tot.LocalDelivered != 3 {
		t.Errorf("local path got %d packets; flows %d, full %d, delivered %d; want 3, 1, 1, 3",
			len(local), tot.LocalFlows, tot.LocalFull, tot.LocalDelivered)
	}
	if st, _ := d.Steering(); st.PassLocal != 1 {
		t.Errorf("steering passed %d frames as local, want 1", st.PassLocal)
	}
}

// TestDirectorLocalRefused: when the local path cannot open, a table
// with a local real server is refused, naming it, and nothing changes;
// at start-up the director does not start.
func TestDirectorLocalRefused(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	before := d.Snapshot().Table
	l.dir.FailLocal(errors.New("no tun here"))
	err := d.Apply(table(t, service("rr", vs.Route, "198.18.0.11", own)))
	if err == nil || !strings.Contains(err.Error(), "real server "+own+" of service TCP 198.19.0.1:80 is an address of this host (local node): no tun here") {
		t.Fatalf("Apply with the local path failing: %v", err)
	}
	// A neighbour's answer may rebuild the snapshot meanwhile, from the
	// same table: compare the tables, not the snapshots.
	if d.Snapshot().Table != before {
		t.Fatal("the refused table was put in force")
	}
	other := l.net.AddHost("other")
	other.AddIface("eth0", [6]byte{2, 0, 0, 0, 0, 3}, netip.MustParsePrefix("198.18.0.3/24"), "lan", 1)
	other.FailLocal(errors.New("no tun here"))
	_, err = director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 1024, Templates: 64, Frames: 512,
		Platform: other, Log: slog.New(slog.DiscardHandler)}, table(t, service("rr", vs.Route, "198.18.0.3")))
	if err == nil || !strings.Contains(err.Error(), "real server 198.18.0.3 of service TCP 198.19.0.1:80 is an address of this host") {
		t.Fatalf("New with the local path failing: %v", err)
	}
	if s, p := other.Open(); s != 0 || p != 0 {
		t.Fatalf("%d sockets and %d programs left open", s, p)
	}
}
