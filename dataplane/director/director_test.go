package director_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/vs"
)

var (
	vip       = netip.MustParseAddr("198.19.0.1")
	clientMAC = [6]byte{0x02, 0, 0, 0, 0, 0x10}
	dirMAC    = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	dirMAC1   = [6]byte{0x02, 0, 0, 0, 1, 0x02}
)

// lab is a fake network: a client, a director and real servers. In the
// one-interface layout everything shares segment "lan" (198.18.0.0/24);
// with two interfaces the director's eth1 and the real servers are on
// "back" (198.18.1.0/24).
type lab struct {
	t      *testing.T
	net    *platformtest.Network
	dir    *platformtest.Host
	client *platformtest.Iface
	reals  map[string]*platformtest.Iface // by address
	hosts  map[string]*platformtest.Host  // the real servers, by address
	log    *syncBuffer
}

func newLab(t *testing.T, twoIfaces bool, reals ...string) *lab {
	t.Helper()
	n := platformtest.NewNetwork()
	n.Misuse = func(msg string) { t.Error(msg) }
	l := &lab{t: t, net: n, dir: n.AddHost("director"), reals: map[string]*platformtest.Iface{},
		hosts: map[string]*platformtest.Host{}, log: &syncBuffer{}}
	l.dir.AddIface("eth0", dirMAC, netip.MustParsePrefix("198.18.0.2/24"), "lan", 1)
	back := "lan"
	if twoIfaces {
		l.dir.AddIface("eth1", dirMAC1, netip.MustParsePrefix("198.18.1.2/24"), "back", 1)
		back = "back"
	}
	l.client = n.AddHost("client").AddIface("eth0", clientMAC, netip.MustParsePrefix("198.18.0.10/24"), "lan", 1)
	for i, a := range reals {
		mac := [6]byte{0x02, 0, 0, 0, 0xee, byte(i + 1)}
		l.hosts[a] = n.AddHost("rs-" + a)
		l.reals[a] = l.hosts[a].AddIface("eth0", mac, netip.PrefixFrom(netip.MustParseAddr(a), 24), back, 1)
	}
	return l
}

// start runs a director on the lab's director host.
func (l *lab) start(ifaces []string, t *vs.Table) *director.Director {
	l.t.Helper()
	d, err := director.New(director.Options{Interfaces: ifaces, Capacity: 4096, Templates: 1024, Frames: 512,
		Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil))}, t)
	if err != nil {
		l.t.Fatal(err)
	}
	d.Start()
	l.t.Cleanup(func() {
		d.Close()
		if s, p := l.dir.Open(); s != 0 || p != 0 {
			l.t.Errorf("after Close: %d sockets and %d programs still open", s, p)
		}
	})
	return d
}

// resolved waits until the snapshot in force has every next hop's MAC.
func resolved(t *testing.T, d *director.Director) {
	t.Helper()
	if !platformtest.Eventually(2*time.Second, func() bool { s := d.Snapshot(); return s != nil && len(s.Unresolved) == 0 }) {
		t.Fatalf("next hops still unresolved: %v", d.Snapshot().Unresolved)
	}
}

func service(sched string, fwd vs.Fwd, reals ...string) vs.Service {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: sched}
	for _, a := range reals {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.MustParseAddr(a), Port: 80, Weight: 1, Fwd: fwd})
	}
	return s
}

func table(t *testing.T, svcs ...vs.Service) *vs.Table {
	t.Helper()
	tb := &vs.Table{}
	for _, s := range svcs {
		if err := tb.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// syn is a TCP SYN from the client to dst:80, addressed to the MAC to.
func syn(t *testing.T, to [6]byte, dst netip.Addr, sport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(clientMAC[:]), DstMAC: net.HardwareAddr(to[:]), EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IPv4(198, 18, 0, 10), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, SYN: true, Seq: 1, Window: 1000}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// collect waits until the real servers' stacks together got n frames and
// returns them by server address.
func (l *lab) collect(n int) map[string][][]byte {
	l.t.Helper()
	got := map[string][][]byte{}
	total := 0
	platformtest.Eventually(2*time.Second, func() bool {
		for a, ifc := range l.reals {
			fs := ifc.Recv()
			got[a] = append(got[a], fs...)
			total += len(fs)
		}
		return total >= n
	})
	if total != n {
		l.t.Fatalf("real servers got %d frames, want %d", total, n)
	}
	return got
}

// decode parses a frame the way the test checks it.
func decode(t *testing.T, f []byte) (*layers.Ethernet, []*layers.IPv4, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	var ips []*layers.IPv4
	for _, l := range p.Layers() {
		if ip, ok := l.(*layers.IPv4); ok {
			ips = append(ips, ip)
		}
	}
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || len(ips) == 0 || tcp == nil {
		t.Fatalf("frame does not decode as Ethernet/IPv4/TCP: %v", p)
	}
	return eth, ips, tcp
}

// TestDirectorForwardsDR runs a whole director on the fake platform: the
// client's SYNs are steered to the worker, scheduled round-robin, and
// reach both real servers with their MACs, from the director's.
func TestDirectorForwardsDR(t *testing.T) {
	l := newLab(t, false, "198.18.0.11", "198.18.0.12")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11", "198.18.0.12")))
	resolved(t, d)
	for i := range 10 {
		l.client.Send(syn(t, dirMAC, vip, uint16(1000+i)))
	}
	got := l.collect(10)
	for a, fs := range got {
		if len(fs) != 5 {
			t.Errorf("%s got %d frames, want 5 of 10 (rr)", a, len(fs))
		}
		for _, f := range fs {
			eth, ips, _ := decode(t, f)
			if [6]byte(eth.SrcMAC) != dirMAC || ips[0].DstIP.String() != vip.String() {
				t.Errorf("%s got a frame from %s to %s; want the director's MAC and the VIP kept (DR)", a, eth.SrcMAC, ips[0].DstIP)
			}
		}
	}
	st, err := d.Steering()
	if err != nil || st.Redirected != 10 {
		t.Errorf("steering redirected %d (%v), want 10", st.Redirected, err)
	}
	var tx uint64
	for _, c := range d.Counters() {
		tx += c.TX.Load()
	}
	if tx != 10 {
		t.Errorf("workers sent %d frames, want 10", tx)
	}
	// The one worker runs on the CPU the platform planned for queue 0.
	if w := d.Workers()[0]; w.CPU != 0 || !platformtest.Eventually(time.Second, func() bool { return len(l.dir.Pins()) == 1 }) || l.dir.Pins()[0] != 0 {
		t.Errorf("worker cpu %d, pins %v; want it pinned to cpu 0", w.CPU, l.dir.Pins())
	}
}

// TestDirectorApplyAndReload changes the table at run time: a new VIP is
// steered and forwarded, a removed one is passed to the kernel, and a
// refused steering update fails Apply with the interface named.
func TestDirectorApplyAndReload(t *testing.T) {
	l := newLab(t, false, "198.18.0.11", "198.18.0.12")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	resolved(t, d)
	vip2 := netip.MustParseAddr("198.19.0.2")
	s2 := service("rr", vs.Route, "198.18.0.12")
	s2.Key.Addr = vip2
	if err := d.Apply(table(t, s2)); err != nil {
		t.Fatal(err)
	}
	resolved(t, d)
	l.client.Send(syn(t, dirMAC, vip2, 2000))
	l.client.Send(syn(t, dirMAC, vip, 2001)) // no longer a service: the kernel's
	got := l.collect(1)
	if len(got["198.18.0.12"]) != 1 {
		t.Fatalf("the new service's real server got %d frames", len(got["198.18.0.12"]))
	}
	st, _ := d.Steering()
	if st.Redirected != 1 || st.PassNoService != 1 {
		t.Errorf("steering %+v: want 1 redirected and the old VIP passed", st)
	}
	before := d.Snapshot()
	l.dir.FailSteering(errors.New("map full"))
	err := d.Apply(table(t, service("rr", vs.Route, "198.18.0.11")))
	if err == nil || !strings.Contains(err.Error(), "steering on eth0: map full") {
		t.Fatalf("Apply with the steering map refusing: %v", err)
	}
	if d.Snapshot() != before {
		t.Fatal("a refused Apply left its snapshot in force")
	}
	l.dir.FailSteering(nil)
}

// TestDirectorNeighbourChange: a real server's MAC changes, and the
// director's next frames go to the new one; while it has none they are
// dropped as neighbor_unresolved.
func TestDirectorNeighbourChange(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	resolved(t, d)
	rs := l.reals["198.18.0.11"]
	newMAC := [6]byte{0x02, 0, 0, 0, 0xee, 0x77}
	// The address moves to another host, which announces its MAC; the
	// old interface keeps listening on the old MAC.
	moved := l.net.AddHost("moved").AddIface("eth0", newMAC, netip.MustParsePrefix("198.18.0.11/24"), "lan", 1)
	rs.SetAddrs()
	l.dir.SetNeighbor("eth0", netip.MustParseAddr("198.18.0.11"), newMAC)
	if !platformtest.Eventually(10*time.Second, func() bool { return d.Snapshot().Services[0].Dests[0].MAC == newMAC }) {
		t.Fatal("the snapshot never took the new MAC")
	}
	l.client.Send(syn(t, dirMAC, vip, 3000))
	if !platformtest.Eventually(10*time.Second, func() bool { return len(moved.Recv()) == 1 }) || len(rs.Recv()) != 0 {
		t.Fatal("the frame did not go to the new MAC alone")
	}
	// Then it leaves the network: nobody answers for the address.
	moved.SetAddrs()
	l.dir.DelNeighbor("eth0", netip.MustParseAddr("198.18.0.11"))
	if !platformtest.Eventually(10*time.Second, func() bool { return len(d.Snapshot().Unresolved) == 1 }) {
		t.Fatal("the snapshot never lost the MAC")
	}
	l.client.Send(syn(t, dirMAC, vip, 3001))
	if !platformtest.Eventually(10*time.Second, func() bool {
		return d.Counters()[0].Drops[dataplane.DropNeighborUnresolved].Load() == 1
	}) {
		t.Fatal("no neighbor_unresolved drop while the next hop had no MAC")
	}
	// The rebuild logs the warning after it has published the snapshot,
	// so the drop above may come first.
	if !platformtest.Eventually(10*time.Second, func() bool { return strings.Contains(l.log.String(), "next hops without a MAC") }) {
		t.Errorf("no warning about the unresolved next hop in the log:\n%s", l.log.String())
	}
}

// TestDirectorEgressInterface runs the LVS two-interface layout: clients
// on eth0, real servers behind eth1. Frames leave by eth1's TX socket with
// eth1's MAC; VS/TUN frames carry eth1's address as the outer source and
// a real server's decapsulation program hands its stack the inner packet.
func TestDirectorEgressInterface(t *testing.T) {
	l := newLab(t, true, "198.18.1.11", "198.18.1.12")
	dc, err := l.hosts["198.18.1.12"].LoadDecap([]netip.Addr{vip})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Attach(l.reals["198.18.1.12"].Index, 0); err != nil {
		t.Fatal(err)
	}
	svc := service("rr", vs.Route, "198.18.1.11", "198.18.1.12")
	svc.Reals[1].Fwd = vs.Tunnel
	d := l.start([]string{"eth0"}, table(t, svc))
	if l.dir.Sockets("eth1") != 1 {
		t.Fatalf("%d sockets on eth1, want one egress socket", l.dir.Sockets("eth1"))
	}
	resolved(t, d)
	for i := range 4 {
		l.client.Send(syn(t, dirMAC, vip, uint16(4000+i)))
	}
	got := l.collect(4)
	for a, fs := range got {
		for _, f := range fs {
			eth, ips, _ := decode(t, f)
			if [6]byte(eth.SrcMAC) != dirMAC1 {
				t.Errorf("%s: source MAC %s, want eth1's", a, eth.SrcMAC)
			}
			if len(ips) != 1 || ips[0].DstIP.String() != vip.String() {
				t.Errorf("%s: the stack got IPv4 headers %v; want one, to the VIP", a, ips)
			}
		}
	}
	if len(got["198.18.1.11"]) != 2 || len(got["198.18.1.12"]) != 2 {
		t.Fatalf("split %d/%d, want 2/2", len(got["198.18.1.11"]), len(got["198.18.1.12"]))
	}
	// The tunnelled ones came with eth1's address as the outer source:
	// the decapsulator stripped exactly those.
	if st, _ := dc.Stats(); st.IPIP != 2 || st.Total != 2 {
		t.Errorf("decap %+v: want the 2 tunnelled frames stripped", st)
	}
}

// TestTwoDirectorsAgree runs two whole directors with the same table on
// one segment, as an active-active pair behind ECMP would: with sh they
// send each client to the same real server.
func TestTwoDirectorsAgree(t *testing.T) {
	l := newLab(t, false, "198.18.0.11", "198.18.0.12", "198.18.0.13")
	macB := [6]byte{0x02, 0, 0, 0, 0, 0x03}
	hostB := l.net.AddHost("director-b")
	hostB.AddIface("eth0", macB, netip.MustParsePrefix("198.18.0.3/24"), "lan", 1)
	tb := table(t, service("sh", vs.Route, "198.18.0.11", "198.18.0.12", "198.18.0.13"))
	a := l.start([]string{"eth0"}, tb)
	b, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Platform: hostB, Log: slog.New(slog.DiscardHandler)}, tb)
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	defer b.Close()
	resolved(t, a)
	resolved(t, b)
	// Clients differ by source address; sh hashes it.
	var want map[string]int
	for round, to := range [][6]byte{dirMAC, macB} {
		for c := range 6 {
			f := syn(t, to, vip, 5000)
			f[14+15] = byte(20 + c) // the source address's last byte
			fixIPChecksum(f)
			l.client.Send(f)
		}
		got := l.collect(6)
		per := map[string]int{}
		for addr, fs := range got {
			for _, f := range fs {
				_, ips, _ := decode(t, f)
				per[ips[0].SrcIP.String()+">"+addr]++
			}
		}
		if round == 0 {
			want = per
		} else if len(per) != len(want) {
			t.Fatalf("director B sent clients %v, director A %v", per, want)
		} else {
			for k := range want {
				if per[k] != want[k] {
					t.Fatalf("director B sent clients %v, director A %v", per, want)
				}
			}
		}
	}
}

func fixIPChecksum(f []byte) {
	ip := f[14:34]
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	ip[10], ip[11] = byte(c>>8), byte(c)
}

// TestNewFailureClosesEverything: a phase that fails closes what
// the earlier phases opened.
func TestNewFailureClosesEverything(t *testing.T) {
	l := newLab(t, false)
	l.dir.AddIface("eth9", [6]byte{2, 9}, netip.Prefix{}, "lan", 1) // no IPv4 address
	_, err := director.New(director.Options{Interfaces: []string{"eth0", "eth9"}, Capacity: 1024, Templates: 64, Frames: 512,
		Platform: l.dir, Log: slog.New(slog.DiscardHandler)}, &vs.Table{})
	if err == nil || !strings.Contains(err.Error(), "interface eth9: has no IPv4 address") {
		t.Fatalf("New = %v", err)
	}
	if s, p := l.dir.Open(); s != 0 || p != 0 {
		t.Fatalf("%d sockets and %d programs left open after the failure", s, p)
	}
}

// syncBuffer is a log destination safe for the director's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDirectorOpensEgressAtRunTime: a director started with no services
// opens an egress interface when a real server added later routes
// through it, forwards through it, and closes it once no real server
// does; adding one back opens it again.
func TestDirectorOpensEgressAtRunTime(t *testing.T) {
	l := newLab(t, true, "198.18.1.11")
	d := l.start([]string{"eth0"}, &vs.Table{})
	if n := l.dir.Sockets("eth1"); n != 0 {
		t.Fatalf("%d sockets on eth1 with no services", n)
	}
	tb := table(t, service("rr", vs.Route, "198.18.1.11"))
	for round := range 2 {
		if err := d.Apply(tb); err != nil {
			t.Fatal(err)
		}
		if n := l.dir.Sockets("eth1"); n != 1 {
			t.Fatalf("round %d: %d sockets on eth1 after a real server behind it was added, want 1", round, n)
		}
		resolved(t, d)
		l.client.Send(syn(t, dirMAC, vip, uint16(6000+round)))
		got := l.collect(1)
		eth, _, _ := decode(t, got["198.18.1.11"][0])
		if [6]byte(eth.SrcMAC) != dirMAC1 {
			t.Fatalf("round %d: frame left with source MAC %s, want eth1's", round, eth.SrcMAC)
		}
		if err := d.Apply(table(t, service("rr", vs.Route))); err != nil {
			t.Fatal(err)
		}
		if n := l.dir.Sockets("eth1"); n != 0 {
			t.Fatalf("round %d: %d sockets on eth1 after its last real server left, want 0", round, n)
		}
	}
	if c := d.Counters()[0].Drops[dataplane.DropNoEgress].Load(); c != 0 {
		t.Errorf("%d frames dropped as no_egress", c)
	}
	log := l.log.String()
	if strings.Count(log, "egress interface opened") != 2 || strings.Count(log, "egress interface closed") != 2 {
		t.Errorf("want two opens and two closes of eth1 in the log:\n%s", log)
	}
}

// TestDirectorUnreachableReal: a real server with no route is accepted,
// shown unreachable with the reason and logged; when a route appears, the
// director picks it up on its own, opens the egress interface and
// forwards.
func TestDirectorUnreachableReal(t *testing.T) {
	l := newLab(t, true)
	far := "198.19.200.5"
	l.hosts[far] = l.net.AddHost("far")
	l.reals[far] = l.hosts[far].AddIface("eth0", [6]byte{2, 0, 0, 0, 0xee, 0x55}, netip.MustParsePrefix(far+"/24"), "back", 1)
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, far)))
	ds := d.Snapshot().Services[0].Dests[0]
	if ds.Slot != -1 || !strings.Contains(ds.Unreachable, "no route to "+far) {
		t.Fatalf("dest %+v: want no slot and the reason", ds)
	}
	if !strings.Contains(l.log.String(), "real server unreachable") || !strings.Contains(l.log.String(), "no route to "+far) {
		t.Fatalf("no warning about the unreachable real server:\n%s", l.log.String())
	}
	// The real server is on-link behind eth1 once the route says so.
	l.dir.AddRoute(netip.MustParsePrefix("198.19.200.0/24"), "eth1", netip.Addr{})
	if !platformtest.Eventually(3*time.Second, func() bool {
		ds := d.Snapshot().Services[0].Dests[0]
		return ds.Slot >= 0 && ds.HaveMAC
	}) {
		t.Fatalf("the director never picked up the new route: %+v", d.Snapshot().Services[0].Dests[0])
	}
	l.client.Send(syn(t, dirMAC, vip, 7000))
	l.collect(1)
	if !strings.Contains(l.log.String(), "real server reachable again") {
		t.Errorf("no log line for the real server becoming reachable:\n%s", l.log.String())
	}
}

// TestDirectorSendsOnAnotherIngress: with two receiving interfaces, a DR
// real server behind the second gets the frames that arrive on the first:
// eth0's worker sends them on eth1's receiving socket.
func TestDirectorSendsOnAnotherIngress(t *testing.T) {
	l := newLab(t, true, "198.18.1.11", "198.18.1.12")
	d := l.start([]string{"eth0", "eth1"}, table(t, service("rr", vs.Route, "198.18.1.11", "198.18.1.12")))
	resolved(t, d)
	for i := range 10 {
		l.client.Send(syn(t, dirMAC, vip, uint16(1000+i)))
	}
	got := l.collect(10)
	for _, a := range []string{"198.18.1.11", "198.18.1.12"} {
		if len(got[a]) != 5 {
			t.Errorf("%s got %d frames, want 5", a, len(got[a]))
		}
		for _, f := range got[a] {
			if eth, _, _ := decode(t, f); [6]byte(eth.SrcMAC) != dirMAC1 {
				t.Errorf("%s got a frame from %s, want eth1's MAC", a, eth.SrcMAC)
			}
		}
	}
	if c := d.Counters()[0].Drops[dataplane.DropNoEgress].Load(); c != 0 {
		t.Errorf("%d frames dropped as no_egress", c)
	}
}

// TestDirectorWaitsForNewNextHops: a real server added at run time is
// published with its MAC when its neighbour answers at once, so its first
// frames are not dropped as neighbor_unresolved; a next hop that never
// answers delays only the Apply that introduced it.
func TestDirectorWaitsForNewNextHops(t *testing.T) {
	l := newLab(t, false, "198.18.0.11", "198.18.0.12")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	if err := d.Apply(table(t, service("rr", vs.Route, "198.18.0.11", "198.18.0.12"))); err != nil {
		t.Fatal(err)
	}
	if u := d.Snapshot().Unresolved; len(u) != 0 {
		t.Fatalf("the new real server was published without its MAC: unresolved %v", u)
	}
	// 198.18.0.99 is on-link but nobody holds it.
	dead := table(t, service("rr", vs.Route, "198.18.0.11", "198.18.0.12", "198.18.0.99"))
	start := time.Now()
	if err := d.Apply(dead); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	start = time.Now()
	if err := d.Apply(dead); err != nil {
		t.Fatal(err)
	}
	if again := time.Since(start); first < 150*time.Millisecond || again > first/2 {
		t.Errorf("Apply with a silent new next hop took %v, the next Apply %v; want it to wait the first time only", first, again)
	}
}

// TestDirectorPollMode: the configured poll mode reaches every worker and
// the log, SetPoll changes it while the director forwards, and a mode
// SetPoll refuses changes nothing.
func TestDirectorPollMode(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	sleep := director.PollConfig{Mode: director.PollSleep}
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Poll: &sleep, Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil))}, table(t, service("rr", vs.Route, "198.18.0.11")))
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer d.Close()
	resolved(t, d)
	if got := d.Workers()[0].PollConfig(); got != sleep {
		t.Errorf("worker poll %v, want sleep", got)
	}
	if !strings.Contains(l.log.String(), "poll=sleep") {
		t.Errorf("the log does not say the poll mode:\n%s", l.log)
	}
	busy := director.PollConfig{Mode: director.PollBusy}
	if err := d.SetPoll(busy); err != nil {
		t.Fatal(err)
	}
	if got := d.Workers()[0].PollConfig(); got != busy {
		t.Errorf("after SetPoll(busy): worker poll %v", got)
	}
	bad := director.PollConfig{Mode: director.PollAdaptive, Spin: 3 * time.Second}
	if err := d.SetPoll(bad); err == nil || !strings.Contains(err.Error(), "poll.spin: 3s") {
		t.Errorf("SetPoll(spin 3s) = %v, want an error naming poll.spin", err)
	}
	if got := d.Workers()[0].PollConfig(); got != busy {
		t.Errorf("a refused SetPoll left the worker at %v", got)
	}
	l.client.Send(syn(t, dirMAC, vip, 3000))
	if got := l.collect(1); len(got["198.18.0.11"]) != 1 {
		t.Errorf("in busy mode the real server got %d frames, want 1", len(got["198.18.0.11"]))
	}
	if _, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		Poll: &bad, Platform: l.dir}, &vs.Table{}); err == nil || !strings.Contains(err.Error(), "poll.spin") {
		t.Errorf("New with spin 3s = %v, want an error naming poll.spin", err)
	}
}
