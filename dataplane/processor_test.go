package dataplane

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

var (
	dirMAC    = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	vip       = netip.MustParseAddr("198.19.0.1")
	dirAddr   = [4]byte{198, 18, 0, 2}
)

type rig struct {
	clock *conntrack.ManualClock
	ct    *conntrack.Table
	loads *sched.Loads
	c     *Counters
	p     *Processor
	snap  *Snapshot
}

func newRig(t testing.TB, tbl *vs.Table, capacity int) *rig {
	t.Helper()
	r := &rig{clock: &conntrack.ManualClock{}, loads: sched.NewLoads(MaxDests), c: new(Counters)}
	var err error
	r.ct, err = conntrack.New(conntrack.Config{Capacity: capacity, Templates: 1024, Timeouts: conntrack.DefaultTimeouts(), Clock: r.clock, Hooks: r.loads})
	if err != nil {
		t.Fatal(err)
	}
	r.snap, err = Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: r.loads, Resolver: StaticResolver{},
		Ifaces: []Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr}}})
	if err != nil {
		t.Fatal(err)
	}
	r.p = NewProcessor(r.ct, r.c, 0)
	return r
}

func oneService(fwd vs.Fwd, schedName string, weights ...int32) *vs.Table {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: vip, Port: 80}, Sched: schedName}
	for i, w := range weights {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Port: 80, Fwd: fwd, Weight: w})
	}
	t := &vs.Table{}
	if err := t.AddService(s); err != nil {
		panic(err)
	}
	return t
}

// tcpFrame builds an Ethernet/IPv4/TCP frame from client:sport to vip:80.
func tcpFrame(t testing.TB, client [4]byte, sport uint16, syn, ack, fin, df bool, payload int) []byte {
	t.Helper()
	ip := testsupport.IPv4(netip.AddrFrom4(client), vip)
	ip.TOS = 0x10
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	var flags testsupport.TCPFlags
	for f, on := range map[testsupport.TCPFlags]bool{testsupport.SYN: syn, testsupport.ACK: ack, testsupport.FIN: fin} {
		if on {
			flags |= f
		}
	}
	return testsupport.Build(t, testsupport.Eth(clientMAC, dirMAC[:]), ip, testsupport.TCP(sport, 80, flags),
		gopacket.Payload(make([]byte, payload)))
}

const headroom = 256

// chunk places frame in a 2048-byte buffer after the AF_XDP headroom.
func chunk(frame []byte) []byte {
	b := make([]byte, 2048)
	copy(b[headroom:], frame)
	return b
}

func TestProcessDR(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1, 1, 1), 1024)
	seen := map[[6]byte]int{}
	for i := 0; i < 6; i++ {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(1000+i), true, false, false, true, 0)
		buf := chunk(f)
		v, out := r.p.Process(r.snap, buf, headroom, len(f))
		if v != VerdictForward {
			t.Fatalf("frame %d: verdict %d", i, v)
		}
		got := buf[out.Off : out.Off+out.Len]
		if out.Off != headroom || out.Len != len(f) {
			t.Fatalf("DR moved the frame: off %d len %d", out.Off, out.Len)
		}
		var dst [6]byte
		copy(dst[:], got[0:6])
		if [6]byte(got[6:12]) != dirMAC {
			t.Fatalf("source MAC %x, want the director's %x", got[6:12], dirMAC)
		}
		seen[dst]++
		if string(got[12:]) != string(f[12:14])+string(afterHop(f)) {
			t.Fatal("DR changed bytes past the MACs other than the TTL and its checksum")
		}
	}
	if len(seen) != 3 {
		t.Fatalf("rr over 3 servers used %d: %v", len(seen), seen)
	}
	for m, n := range seen {
		if n != 2 {
			t.Fatalf("server %x got %d of 6", m, n)
		}
	}
}

func TestProcessEstablishedFlowSticks(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1, 1, 1), 1024)
	client := [4]byte{198, 18, 0, 10}
	syn := tcpFrame(t, client, 4000, true, false, false, true, 0)
	buf := chunk(syn)
	_, out := r.p.Process(r.snap, buf, headroom, len(syn))
	first := [6]byte(buf[out.Off : out.Off+6])
	for i := 0; i < 5; i++ {
		a := tcpFrame(t, client, 4000, false, true, false, true, 100)
		b := chunk(a)
		v, o := r.p.Process(r.snap, b, headroom, len(a))
		if v != VerdictForward || [6]byte(b[o.Off:o.Off+6]) != first {
			t.Fatalf("packet %d of the flow went elsewhere (verdict %d)", i, v)
		}
	}
	if a := r.loads.Active(r.snap.Services[0].Dests[0].ID); a != 1 {
		t.Fatalf("active connections of the first server = %d, want 1", a)
	}
	// A non-SYN without a connection is dropped and counted.
	a := tcpFrame(t, client, 4001, false, true, false, true, 0)
	if v, _ := r.p.Process(r.snap, chunk(a), headroom, len(a)); v != VerdictDrop || r.c.Drops[DropNoConnection].Load() != 1 {
		t.Fatalf("non-SYN without connection: verdict %d, no_connection=%d", v, r.c.Drops[DropNoConnection].Load())
	}
}

func TestProcessTUN(t *testing.T) {
	r := newRig(t, oneService(vs.Tunnel, "wrr", 1), 1024)
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, true, false, false, true, 10)
	buf := chunk(f)
	v, out := r.p.Process(r.snap, buf, headroom, len(f))
	if v != VerdictForward {
		t.Fatalf("verdict %d", v)
	}
	if out.Off != headroom-20 || out.Len != len(f)+20 {
		t.Fatalf("off %d len %d, want in-place prepend at %d", out.Off, out.Len, headroom-20)
	}
	pkt := gopacket.NewPacket(buf[out.Off:out.Off+out.Len], layers.LayerTypeEthernet, gopacket.Default)
	ls := pkt.Layers()
	if len(ls) < 4 {
		t.Fatalf("decoded layers %v", ls)
	}
	outer := ls[1].(*layers.IPv4)
	inner := ls[2].(*layers.IPv4)
	if outer.Protocol != layers.IPProtocolIPv4 || !outer.SrcIP.Equal(net.IP(dirAddr[:])) || !outer.DstIP.Equal(net.IPv4(198, 18, 0, 11)) {
		t.Fatalf("outer header %v -> %v proto %v", outer.SrcIP, outer.DstIP, outer.Protocol)
	}
	if outer.TTL != 63 || inner.TTL != 63 || outer.TOS != 0x10 || outer.Flags&layers.IPv4DontFragment == 0 {
		t.Fatalf("outer TTL %d TOS %#x flags %v", outer.TTL, outer.TOS, outer.Flags)
	}
	if !inner.DstIP.Equal(net.IP(vip.AsSlice())) {
		t.Fatalf("inner dst %v", inner.DstIP)
	}
}

func TestProcessTUNFragNeeded(t *testing.T) {
	r := newRig(t, oneService(vs.Tunnel, "rr", 1), 1024)
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5001, true, false, false, true, 1460)
	v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f))
	if v != VerdictReply {
		t.Fatalf("verdict %d, want Reply (ICMP frag needed)", v)
	}
	pkt := gopacket.NewPacket(r.p.Reply(), layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) {
		t.Fatalf("reply is not ICMP frag-needed: %v", pkt)
	}
	if mtu := uint16(icmp.Seq); mtu != 1480 {
		t.Fatalf("next-hop MTU %d, want 1480", mtu)
	}
	// Without DF the inner packet is split in two fragments, each tunnelled
	// (encap's tests check the fragments byte by byte).
	g := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5002, true, false, false, false, 1460)
	buf := chunk(g)
	v, out := r.p.Process(r.snap, buf, headroom, len(g))
	if v != VerdictForward || !out.Second || r.c.Fragmented.Load() != 1 {
		t.Fatalf("no-DF oversize: verdict %d, out %+v, fragmented %d", v, out, r.c.Fragmented.Load())
	}
	for i, f := range [][]byte{buf[out.Off : out.Off+out.Len], r.p.Second()} {
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		var ips []*layers.IPv4
		for _, l := range pkt.Layers() {
			if ip, ok := l.(*layers.IPv4); ok {
				ips = append(ips, ip)
			}
		}
		if len(ips) != 2 || ips[0].Protocol != layers.IPProtocolIPv4 || int(ips[0].Length) > 1500 {
			t.Fatalf("fragment %d is not a tunnelled packet within the MTU: %v", i, pkt)
		}
		if mf := ips[1].Flags&layers.IPv4MoreFragments != 0; mf != (i == 0) {
			t.Fatalf("fragment %d: MF %v", i, mf)
		}
	}
	// What two fragments cannot carry is dropped as too big.
	r.snap.Ifaces[0].MTU = 700
	g = tcpFrame(t, [4]byte{198, 18, 0, 10}, 5003, true, false, false, false, 1460)
	if v, _ := r.p.Process(r.snap, chunk(g), headroom, len(g)); v != VerdictDrop || r.c.Drops[DropTooBig].Load() != 1 {
		t.Fatalf("no-DF, three fragments' worth: verdict %d, too_big %d", v, r.c.Drops[DropTooBig].Load())
	}
}

func TestProcessPersistence(t *testing.T) {
	tbl := oneService(vs.Route, "rr", 1, 1, 1)
	tbl.Services[0].Persistent = true
	tbl.Services[0].Timeout = 300
	tbl.Services[0].Netmask = netip.MustParseAddr("255.255.255.0")
	r := newLifeRig(t, tbl)
	var first [6]byte
	for i := 0; i < 9; i++ {
		// Different clients of one /24, different ports: one server.
		f := tcpFrame(t, [4]byte{198, 18, 0, byte(20 + i)}, uint16(2000+i), true, false, false, true, 0)
		buf := chunk(f)
		v, out := r.p.Process(r.snap, buf, headroom, len(f))
		if v != VerdictForward {
			t.Fatalf("verdict %d", v)
		}
		m := [6]byte(buf[out.Off : out.Off+6])
		if i == 0 {
			first = m
		} else if m != first {
			t.Fatalf("client %d of the same /24 went to %x, not %x", i, m, first)
		}
	}
	// Quiesce that server. ip_vs_check_template keeps a template to a
	// weight-0 server unless expire_quiescent_template is set: by default
	// new connections of the /24 still go there; with the sysctl the
	// template is dropped and the next one is scheduled afresh.
	for i := range tbl.Services[0].Reals {
		if SyntheticMAC(tbl.Services[0].Reals[i].Addr) == first {
			tbl.Services[0].Reals[i].Weight = 0
		}
	}
	r.rebuild(t, tbl) // same registry: the servers keep their IDs
	f := tcpFrame(t, [4]byte{198, 18, 0, 99}, 3000, true, false, false, true, 0)
	buf := chunk(f)
	if v, out := r.p.Process(r.snap, buf, headroom, len(f)); v != VerdictForward || [6]byte(buf[out.Off:out.Off+6]) != first || !r.p.Last.Template {
		t.Fatalf("expire_quiescent_template=0: new connection of a persistent client left the quiesced server (verdict %d, %+v)", v, r.p.Last)
	}
	sys := conntrack.DefaultSysctls()
	sys.ExpireQuiescentTemplate = true
	if err := r.ct.SetSysctls(sys); err != nil {
		t.Fatal(err)
	}
	f = tcpFrame(t, [4]byte{198, 18, 0, 98}, 3001, true, false, false, true, 0)
	buf = chunk(f)
	if v, out := r.p.Process(r.snap, buf, headroom, len(f)); v != VerdictForward || [6]byte(buf[out.Off:out.Off+6]) == first || r.p.Last.Template {
		t.Fatalf("expire_quiescent_template=1: new connection went to the quiesced server (verdict %d, %+v)", v, r.p.Last)
	}
}

func TestProcessDropsCounted(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	cases := []struct {
		name  string
		frame []byte
	}{
		{"empty", nil},
		{"short", []byte{1, 2, 3}},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 0)},
	}
	for _, c := range cases {
		if v, _ := r.p.Process(r.snap, chunk(c.frame), headroom, len(c.frame)); v != VerdictDrop {
			t.Fatalf("%s: verdict %d", c.name, v)
		}
	}
	var parse uint64
	for i := range r.c.Parse {
		parse += r.c.Parse[i].Load()
	}
	if parse != 3 {
		t.Fatalf("parse drops = %d, want 3", parse)
	}
}

func TestProcessUnresolvedNeighbor(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	snap, err := Build(oneService(vs.Route, "rr", 1), BuildOptions{Registry: NewRegistry(), Loads: r.loads,
		Resolver: StaticResolver{MACs: map[netip.Addr][6]byte{netip.MustParseAddr("198.18.0.11"): {}}}, Ifaces: r.snap.Ifaces})
	if err != nil {
		t.Fatal(err)
	}
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 1, true, false, false, true, 0)
	if v, _ := r.p.Process(snap, chunk(f), headroom, len(f)); v != VerdictDrop || r.c.Drops[DropNeighborUnresolved].Load() != 1 {
		t.Fatalf("unresolved neighbour: verdict %d; never send to a zero MAC", v)
	}
}

func TestProcessAllocs(t *testing.T) {
	r := newRig(t, oneService(vs.Tunnel, "wlc", 1, 2, 3), 1<<16)
	est := tcpFrame(t, [4]byte{198, 18, 0, 10}, 7000, true, false, false, true, 0)
	buf := chunk(est)
	r.p.Process(r.snap, buf, headroom, len(est))
	ack := tcpFrame(t, [4]byte{198, 18, 0, 10}, 7000, false, true, false, true, 64)
	b := make([]byte, 2048)
	allocs := testing.AllocsPerRun(1000, func() {
		copy(b[headroom:], ack)
		r.p.Process(r.snap, b, headroom, len(ack))
	})
	if allocs != 0 {
		t.Fatalf("established flow: %v allocs per frame", allocs)
	}
	port := uint16(0)
	syn := tcpFrame(t, [4]byte{198, 18, 1, 10}, 0, true, false, false, true, 0)
	allocs = testing.AllocsPerRun(1000, func() {
		port++
		copy(b[headroom:], syn)
		// new source port each time: a new connection (checksum is not checked on L4)
		b[headroom+34], b[headroom+35] = byte(port>>8), byte(port)
		r.p.Process(r.snap, b, headroom, len(syn))
	})
	if allocs != 0 {
		t.Fatalf("new flow: %v allocs per frame", allocs)
	}
	if r.c.Drops[DropTableFull].Load() != 0 {
		t.Fatal("table filled during the alloc test")
	}
}

func BenchmarkProcess(b *testing.B) {
	for _, fwd := range []vs.Fwd{vs.Route, vs.Tunnel} {
		b.Run("fwd="+fwd.String()+"/flow=established", func(b *testing.B) {
			r := newRig(b, oneService(fwd, "wlc", 1, 2, 3), 1<<16)
			syn := tcpFrame(b, [4]byte{198, 18, 0, 10}, 7000, true, false, false, true, 0)
			r.p.Process(r.snap, chunk(syn), headroom, len(syn))
			ack := tcpFrame(b, [4]byte{198, 18, 0, 10}, 7000, false, true, false, true, 18)
			buf := make([]byte, 2048)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[headroom:], ack)
				r.p.Process(r.snap, buf, headroom, len(ack))
			}
		})
	}
	b.Run("fwd=Route/flow=new", func(b *testing.B) {
		r := newRig(b, oneService(vs.Route, "wlc", 1, 2, 3), 1<<20)
		syn := tcpFrame(b, [4]byte{198, 18, 0, 10}, 0, true, false, false, true, 0)
		buf := make([]byte, 2048)
		var n uint32
		b.ReportAllocs()
		for b.Loop() {
			n++
			copy(buf[headroom:], syn)
			buf[headroom+28], buf[headroom+29] = byte(n>>16), byte(n>>8) // vary client address
			buf[headroom+34], buf[headroom+35] = byte(n>>8), byte(n)
			ip := header.IPv4(buf[headroom+14 : headroom+34])
			ip.SetChecksum(ip.CalculateChecksum())
			if v, _ := r.p.Process(r.snap, buf, headroom, len(syn)); v != VerdictForward {
				b.Fatalf("new flow %d dropped", n)
			}
			if n%(1<<18) == 0 {
				r.clock.Advance(time.Hour)
				r.ct.Sweep(1 << 22)
			}
		}
	})
}

func TestProcessFirewallMarkAndPortZero(t *testing.T) {
	// A firewall-mark group: TCP 198.19.0.1 ports 8000-8002 and UDP 198.19.0.2
	// any port, served as one persistent service.
	tbl := &vs.Table{Marks: []vs.Mark{{Mark: 5, Matches: []vs.Match{
		{Proto: vs.TCP, Addr: vip, PortLo: 8000, PortHi: 8002},
		{Proto: vs.UDP, Addr: netip.MustParseAddr("198.19.0.2")},
	}}}}
	s := vs.Service{Key: vs.Key{FWMark: 5}, Sched: "rr", Persistent: true, Timeout: 60}
	for i := 0; i < 3; i++ {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)}), Fwd: vs.Route, Weight: 1})
	}
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, tbl, 1024)
	keys := r.snap.SteeringKeys()
	if len(keys) != 4 {
		t.Fatalf("steering keys %v, want 3 TCP ports and one UDP port-0 key", keys)
	}
	frame := func(port uint16) []byte {
		f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 3333, true, false, false, true, 0)
		f[36], f[37] = byte(port>>8), byte(port)
		return f
	}
	var first [6]byte
	for i, port := range []uint16{8000, 8001, 8002} {
		f := frame(port)
		buf := chunk(f)
		v, out := r.p.Process(r.snap, buf, headroom, len(f))
		if v != VerdictForward {
			t.Fatalf("port %d: verdict %d", port, v)
		}
		m := [6]byte(buf[out.Off : out.Off+6])
		if i == 0 {
			first = m
		} else if m != first {
			t.Fatalf("port %d went to %x, not %x: one template covers the whole mark", port, m, first)
		}
		if !r.p.Last.New || (i > 0 && !r.p.Last.Template) {
			t.Fatalf("port %d: decision %+v", port, r.p.Last)
		}
	}
	f := frame(8003)
	if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictDrop || r.c.Drops[DropNoService].Load() != 1 {
		t.Fatalf("port outside the mark's range: verdict %d", v)
	}
}

// TestProcessDRTooBig: DR has no tunnel overhead, but the egress interface
// may have a smaller MTU than the client's path (the two-interface
// layout). A DF packet over it gets ICMP fragmentation-needed with the
// egress MTU itself; one without DF leaves as two fragments within it.
func TestProcessDRTooBig(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1), 1024)
	r.snap.Ifaces[0].MTU = 1400
	f := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5101, true, false, false, true, 1460)
	if v, _ := r.p.Process(r.snap, chunk(f), headroom, len(f)); v != VerdictReply {
		t.Fatalf("DF over the MTU: verdict %d, want an ICMP reply", v)
	}
	pkt := gopacket.NewPacket(r.p.Reply(), layers.LayerTypeEthernet, gopacket.Default)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp == nil || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || uint16(icmp.Seq) != 1400 {
		t.Fatalf("reply is not fragmentation-needed with MTU 1400: %v", pkt)
	}
	g := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5102, true, false, false, false, 1460)
	buf := chunk(g)
	v, out := r.p.Process(r.snap, buf, headroom, len(g))
	if v != VerdictForward || !out.Second {
		t.Fatalf("no DF over the MTU: verdict %d, out %+v", v, out)
	}
	for i, fr := range [][]byte{buf[out.Off : out.Off+out.Len], r.p.Second()} {
		ip, _ := gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil || int(ip.Length) > 1400 || (ip.Flags&layers.IPv4MoreFragments != 0) != (i == 0) {
			t.Fatalf("fragment %d: %+v", i, ip)
		}
		if [6]byte(fr[0:6]) == ([6]byte{}) {
			t.Fatalf("fragment %d has no destination MAC", i)
		}
	}
	// Within the MTU nothing changes: one frame, MACs rewritten.
	h := tcpFrame(t, [4]byte{198, 18, 0, 10}, 5103, true, false, false, false, 1000)
	if v, out := r.p.Process(r.snap, chunk(h), headroom, len(h)); v != VerdictForward || out.Second {
		t.Fatalf("within the MTU: verdict %d, out %+v", v, out)
	}
}
