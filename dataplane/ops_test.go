package dataplane

import (
	"bytes"
	"net/netip"
	"sort"
	"testing"
	"time"

	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// One-packet scheduling (ipvsadm -o), checked against what the kernel
// does (ip_vs_schedule, ip_vs_sched_persist, ip_vs_conn_new/hash/put,
// ip_vs_sync_conn): a UDP datagram that no connection matches is
// scheduled on its own, forwarded, counted as one connection of its
// service and real server, and leaves no connection behind.

var (
	opsVIP = netip.MustParseAddr("198.19.0.7")
	opsRS  = []netip.Addr{
		netip.MustParseAddr("198.18.0.31"),
		netip.MustParseAddr("198.18.0.32"),
		netip.MustParseAddr("198.18.0.33"),
	}
)

// opsTable is one UDP service vip:53 with the three opsRS servers, added
// in that order, with scheduler schedName and one-packet scheduling on
// or off.
func opsTable(t testing.TB, schedName string, ops bool, fwd vs.Fwd, edit func(*vs.Service)) *vs.Table {
	t.Helper()
	s := vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: opsVIP, Port: 53}, Sched: schedName, OnePacket: ops}
	for _, a := range opsRS {
		port := uint16(53)
		if fwd == vs.Masq {
			port = 5353
		}
		s.Reals = append(s.Reals, vs.Real{Addr: a, Port: port, Fwd: fwd, Weight: 1})
	}
	if edit != nil {
		edit(&s)
	}
	tbl := &vs.Table{}
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	return tbl
}

func opsRig(t testing.TB, tbl *vs.Table) *fxRig {
	t.Helper()
	r := newFxRig(t, 1024, 1024)
	r.apply(t, tbl)
	return r
}

// opsSend runs a datagram from client:sport to opsVIP:53 and returns the
// real server it went to (the zero Addr if it was not forwarded).
func (r *fxRig) opsSend(t testing.TB, client netip.Addr, sport uint16) netip.Addr {
	t.Helper()
	v, _, _ := r.run(dgram(t, opsVIP, 53, fxFrom(client), fxSport(sport)), 64)
	if v != VerdictForward || r.p.dest == nil {
		return netip.Addr{}
	}
	return r.p.dest.IP()
}

// TestOnePacketRoundRobin: rr over three servers, six datagrams from one
// client socket. With -o each is scheduled on its own, in the kernel's
// list order (newest first: .33, .32, .31, again); without -o the first
// makes a connection and the other five follow it. Either way the six
// count as six packets in; with -o they also count as six connections
// (ip_vs_conn_stats per datagram), and the table keeps none.
func TestOnePacketRoundRobin(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	for _, ops := range []bool{true, false} {
		r := opsRig(t, opsTable(t, "rr", ops, vs.Route, nil))
		var got []netip.Addr
		for range 6 {
			got = append(got, r.opsSend(t, client, 40000))
		}
		want := []netip.Addr{opsRS[2], opsRS[1], opsRS[0], opsRS[2], opsRS[1], opsRS[0]}
		if !ops {
			want = []netip.Addr{opsRS[2], opsRS[2], opsRS[2], opsRS[2], opsRS[2], opsRS[2]}
		}
		if !slicesEqual(got, want) {
			t.Errorf("ops=%v: datagrams went to %v, want %v", ops, got, want)
		}
		svc := &r.snap.Services[0]
		st := r.c.Service(svc.ID)
		wantConns, wantEntries := uint64(6), uint64(0)
		if !ops {
			wantConns, wantEntries = 1, 1
		}
		if st.Conns != wantConns || st.InPkts != 6 {
			t.Errorf("ops=%v: service counts %d connections and %d packets in, want %d and 6", ops, st.Conns, st.InPkts, wantConns)
		}
		if e := r.ct.Stats().Entries; e != wantEntries {
			t.Errorf("ops=%v: the connection table holds %d entries, want %d", ops, e, wantEntries)
		}
		var sum uint64
		for _, d := range svc.Dests {
			sum += r.c.Dest(d.ID).Conns
			if ops && (r.loads.Active(d.ID) != 0 || r.loads.Inactive(d.ID) != 0) {
				t.Errorf("ops: %v has %d active and %d inactive connections, want none", d.IP(), r.loads.Active(d.ID), r.loads.Inactive(d.ID))
			}
		}
		if sum != wantConns {
			t.Errorf("ops=%v: the real servers count %d connections, want %d", ops, sum, wantConns)
		}
		if r.p.Last.OnePacket != ops {
			t.Errorf("ops=%v: Decision.OnePacket is %v", ops, r.p.Last.OnePacket)
		}
	}
}

func slicesEqual(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestOnePacketLeastConnection: lc and wlc read ActiveConn and InActConn,
// which a one-packet connection joins and leaves within its packet
// (ip_vs_bind_dest, then ip_vs_conn_put expires it). So nothing piles up:
// with -o, datagrams from six client ports all find every server at 0
// and go to the first in the kernel's list (.33), as the kernel's lc and
// wlc pick the first of equal loads. Without -o each datagram's
// connection counts, and six datagrams spread two to a server.
func TestOnePacketLeastConnection(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	for _, name := range []string{"lc", "wlc"} {
		for _, ops := range []bool{true, false} {
			r := opsRig(t, opsTable(t, name, ops, vs.Route, nil))
			per := map[netip.Addr]int{}
			for i := range 6 {
				per[r.opsSend(t, client, uint16(41000+i))]++
			}
			if ops {
				if per[opsRS[2]] != 6 {
					t.Errorf("%s -o: datagrams went %v, want all six to %v", name, per, opsRS[2])
				}
				for _, d := range r.snap.Services[0].Dests {
					if r.loads.Active(d.ID)+r.loads.Inactive(d.ID) != 0 {
						t.Errorf("%s -o: %v holds connections", name, d.IP())
					}
				}
				continue
			}
			for _, a := range opsRS {
				if per[a] != 2 {
					t.Errorf("%s without -o: datagrams went %v, want two to each server", name, per)
					break
				}
			}
		}
	}
}

// TestOnePacketPersistence: ip_vs_sched_persist makes and uses the
// template before it makes the (one-packet) connection, so -p with -o
// keeps a client on one server: six datagrams from six ports all go to
// the server the first chose, and count as six connections. The
// template's timer is re-armed by each datagram, as the kernel's
// ip_vs_conn_put(ct) does: with a 10 s timeout, datagrams 8 s apart
// keep it past its first 10 s, and once 10 s pass without one it
// expires and the next datagram is scheduled afresh (rr moves on).
func TestOnePacketPersistence(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	r := opsRig(t, opsTable(t, "rr", true, vs.Route, func(s *vs.Service) { s.Persistent, s.Timeout = true, 10 }))
	first := r.opsSend(t, client, 40000)
	if first != opsRS[2] {
		t.Fatalf("first datagram went to %v, want %v", first, opsRS[2])
	}
	for i := 1; i < 6; i++ {
		r.clock.Advance(8 * time.Second)
		if got := r.opsSend(t, client, uint16(40000+i)); got != first || !r.p.Last.Template || !r.p.Last.OnePacket {
			t.Fatalf("datagram %d at %ds went to %v (template %v, one-packet %v), want %v through the template",
				i, 8*i, got, r.p.Last.Template, r.p.Last.OnePacket, first)
		}
	}
	st := r.ct.Stats()
	if st.Entries != 0 || st.Templates != 1 {
		t.Errorf("table holds %d connections and %d templates, want 0 and 1", st.Entries, st.Templates)
	}
	if c := r.c.Service(r.snap.Services[0].ID).Conns; c != 6 {
		t.Errorf("service counts %d connections, want 6", c)
	}
	// Another client is scheduled on its own: rr's next server.
	if got := r.opsSend(t, netip.MustParseAddr("198.18.1.11"), 40000); got != opsRS[1] {
		t.Errorf("a second client went to %v, want %v", got, opsRS[1])
	}
	r.clock.Advance(10*time.Second + time.Millisecond)
	if got := r.opsSend(t, client, 40009); got != opsRS[0] || r.p.Last.Template {
		t.Errorf("after the template expired the client went to %v (template %v), want %v scheduled afresh", got, r.p.Last.Template, opsRS[0])
	}
}

// TestOnePacketFirewallMarkTCP: the kernel sets IP_VS_CONN_F_ONE_PACKET
// only when the packet is UDP, so a firewall-mark service with -o whose
// mark covers TCP and UDP keeps connections for TCP and none for UDP.
func TestOnePacketFirewallMarkTCP(t *testing.T) {
	tbl := &vs.Table{Marks: []vs.Mark{{Mark: 9, Matches: []vs.Match{
		{Proto: vs.TCP, Addr: opsVIP, PortLo: 53, PortHi: 53},
		{Proto: vs.UDP, Addr: opsVIP, PortLo: 53, PortHi: 53},
	}}}}
	s := vs.Service{Key: vs.Key{FWMark: 9}, Sched: "rr", OnePacket: true}
	for _, a := range opsRS {
		s.Reals = append(s.Reals, vs.Real{Addr: a, Fwd: vs.Route, Weight: 1})
	}
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	r := opsRig(t, tbl)
	client := netip.MustParseAddr("198.18.1.10")
	for i := range 3 {
		if r.opsSend(t, client, 40000) != opsRS[2-i] || !r.p.Last.OnePacket {
			t.Fatalf("UDP datagram %d: went to %v (one-packet %v), want %v", i, r.p.Last.Dest, r.p.Last.OnePacket, opsRS[2-i])
		}
	}
	if e := r.ct.Stats().Entries; e != 0 {
		t.Fatalf("%d connections after the UDP datagrams, want 0", e)
	}
	if v, _, _ := r.run(seg(t, opsVIP, 53, fxFrom(client)), 64); v != VerdictForward || r.p.Last.OnePacket {
		t.Fatalf("TCP SYN: verdict %d, one-packet %v; want forwarded with a connection", v, r.p.Last.OnePacket)
	}
	if e := r.ct.Stats().Entries; e != 1 {
		t.Fatalf("%d connections after the TCP SYN, want 1", e)
	}
}

// TestOnePacketEdit: -E switches -o while traffic flows. A connection
// made before -o is a hashed connection, which ip_vs_in_hook's
// conn_in_get finds whatever the service's flags now are: that client
// socket stays on its server until the entry expires, while every other
// datagram is scheduled on its own. -E without -o (ipvsadm sends the
// service's flags whole) turns it off: new client sockets make
// connections again. The rr position carries across the edits.
func TestOnePacketEdit(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	r := opsRig(t, opsTable(t, "rr", false, vs.Route, nil))
	if got := r.opsSend(t, client, 40000); got != opsRS[2] {
		t.Fatalf("first datagram went to %v", got)
	}
	r.apply(t, opsTable(t, "rr", true, vs.Route, nil))
	for i := range 3 {
		if got := r.opsSend(t, client, 40000); got != opsRS[2] || r.p.Last.New {
			t.Fatalf("datagram %d of the old socket went to %v (new %v), want its connection's %v", i, got, r.p.Last.New, opsRS[2])
		}
	}
	var got []netip.Addr
	for range 3 {
		got = append(got, r.opsSend(t, client, 40001))
	}
	if want := []netip.Addr{opsRS[1], opsRS[0], opsRS[2]}; !slicesEqual(got, want) {
		t.Fatalf("with -o a new socket's datagrams went to %v, want %v", got, want)
	}
	if e := r.ct.Stats().Entries; e != 1 {
		t.Fatalf("%d connections with -o on, want the old socket's 1", e)
	}
	r.apply(t, opsTable(t, "rr", false, vs.Route, nil))
	first := r.opsSend(t, client, 40002)
	for range 3 {
		if got := r.opsSend(t, client, 40002); got != first {
			t.Fatalf("with -o off again a socket's datagrams went to %v and %v", first, got)
		}
	}
	if e := r.ct.Stats().Entries; e != 2 {
		t.Fatalf("%d connections with -o off again, want 2", e)
	}
}

// TestOnePacketNAT: with VS/NAT the datagram is rewritten to its real
// server as any NAT packet, but no connection is kept, so there is
// nothing to translate the server's reply by. The kernel says as much
// (ip_vs_update_conntrack: "no reply is expected"), and its ip_vs_out
// finds no connection for the reply and lets it go on untranslated (or,
// with nat_icmp_send, answers the server with port unreachable); afvs
// drops it and counts reply_no_connection. Either way the client gets no
// reply from the VIP.
func TestOnePacketNAT(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	r := opsRig(t, opsTable(t, "rr", true, vs.Masq, nil))
	v, out, _ := r.run(dgram(t, opsVIP, 53, fxFrom(client), fxSport(40000)), 64)
	if v != VerdictForward || !r.p.Last.OnePacket {
		t.Fatalf("request: verdict %d, one-packet %v", v, r.p.Last.OnePacket)
	}
	if dst := netip.AddrFrom4([4]byte(out[30:34])); dst != opsRS[2] {
		t.Fatalf("request rewritten to %v, want %v", dst, opsRS[2])
	}
	reply := ts.Build(t, ts.Eth(fxMAC(opsRS[2]), fxDirMAC), ipHeaderFrom(opsRS[2], client, true), ts.UDP(5353, 40000), ts.Payload(10))
	before := r.c.Drops[DropReplyNoConnection].Load()
	if v, _, _ := r.run(reply, 64); v != VerdictDrop {
		t.Fatalf("reply: verdict %d, want drop", v)
	}
	if r.c.Drops[DropReplyNoConnection].Load() != before+1 {
		t.Fatalf("reply not counted as reply_no_connection")
	}
}

// TestOnePacketSync: ip_vs_sync_conn never sends a one-packet connection
// ("Do not sync ONE PACKET") but goes on to its controlling template. So
// a sync master sends nothing for -o datagrams without persistence, and
// with -p sends the template (with the default sync_threshold a
// template is due at every packet of the connections it controls).
// Three datagrams from one socket: a kept UDP connection would reach
// sync_threshold's third packet and be sent.
func TestOnePacketSync(t *testing.T) {
	client := [4]byte{198, 18, 1, 10}
	for _, persist := range []bool{false, true} {
		tbl := opsTable(t, "rr", true, vs.Route, func(s *vs.Service) {
			if persist {
				s.Persistent, s.Timeout = true, 300
			}
		})
		r := newRig(t, tbl, 1024)
		q := r.syncOn(t, ipvssync.DefaultSettings)
		for i := range 3 {
			f := dgram(t, opsVIP, 53, fxFrom(netip.AddrFrom4(client)), fxSport(40000))
			if v, _ := r.sendFrame(t, f); v != VerdictForward {
				t.Fatalf("persist=%v: datagram %d: verdict %d", persist, i, v)
			}
		}
		r.p.Flush()
		recs := drain(q)
		templates := 0
		for i := range recs {
			if recs[i].Flags&ipvssync.FlagTemplate == 0 {
				t.Fatalf("persist=%v: record %d is a connection; one-packet connections are never synced", persist, i)
			}
			templates++
		}
		if want := map[bool]int{false: 0, true: 3}[persist]; templates != want {
			t.Fatalf("persist=%v: %d template records, want %d", persist, templates, want)
		}
	}
}

// TestOnePacketIPv6: the IPv6 path schedules through the same code: an
// rr -o service of the IPv6 family spreads one socket's datagrams over
// its servers (newest first) and keeps no connection.
func TestOnePacketIPv6(t *testing.T) {
	vip := netip.MustParseAddr("2001:2:0:1::53")
	rs := []netip.Addr{netip.MustParseAddr("2001:2::31"), netip.MustParseAddr("2001:2::32"), netip.MustParseAddr("2001:2::33")}
	s := vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: vip, Port: 53}, Sched: "rr", OnePacket: true}
	for _, a := range rs {
		s.Reals = append(s.Reals, vs.Real{Addr: a, Port: 53, Fwd: vs.Route, Weight: 1})
	}
	tbl := &vs.Table{}
	if err := tbl.AddService(s); err != nil {
		t.Fatal(err)
	}
	r := newFxRig(t, 1024, 64)
	snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap, Resolver: StaticResolver{}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
	var got []netip.Addr
	for range 6 {
		v, out, _ := r.run(frame6(t, vip, 53, f6UDP, f6Sport(40000)), 256)
		if v != VerdictForward || !r.p.Last.OnePacket {
			t.Fatalf("verdict %d, one-packet %v", v, r.p.Last.OnePacket)
		}
		for _, a := range rs {
			if bytes.Equal(out[:6], fxMAC(a)) {
				got = append(got, a)
			}
		}
	}
	if want := []netip.Addr{rs[2], rs[1], rs[0], rs[2], rs[1], rs[0]}; !slicesEqual(got, want) {
		t.Fatalf("datagrams went to %v, want %v", got, want)
	}
	if e := r.ct.Stats().Entries; e != 0 {
		t.Fatalf("%d connections, want 0", e)
	}
}

// TestOnePacketFragments: a fragmented datagram of a -o service is one
// datagram: its first fragment is scheduled, the others follow it to
// the same server (the fragment table keeps the decision, not the
// connection table), and the next datagram is scheduled afresh.
func TestOnePacketFragments(t *testing.T) {
	r := opsRig(t, opsTable(t, "rr", true, vs.Route, nil))
	for id, want := range []netip.Addr{opsRS[2], opsRS[1], opsRS[0]} {
		for i, f := range bigDgram(t, opsVIP, uint16(id+1)) {
			out := mustForward(t, r, f)
			if !bytes.Equal(out[:6], fxMAC(want)) {
				t.Fatalf("datagram %d fragment %d went to MAC %x, want %v's", id, i, out[:6], want)
			}
		}
	}
	if e := r.ct.Stats().Entries; e != 0 {
		t.Fatalf("%d connections, want 0", e)
	}
	if c := r.c.Service(r.snap.Services[0].ID); c.Conns != 3 || c.InPkts != 3 {
		t.Fatalf("service counts %d connections and %d packets, want 3 and 3", c.Conns, c.InPkts)
	}
}

// TestOnePacketAllocs: a one-packet datagram, with and without a
// persistence template, allocates nothing.
func TestOnePacketAllocs(t *testing.T) {
	client := netip.MustParseAddr("198.18.1.10")
	for _, persist := range []bool{false, true} {
		r := opsRig(t, opsTable(t, "rr", true, vs.Route, func(s *vs.Service) { s.Persistent, s.Timeout = persist, 300 }))
		frame := dgram(t, opsVIP, 53, fxFrom(client), fxSport(40000))
		buf := make([]byte, maxFrame)
		allocs := testing.AllocsPerRun(200, func() {
			copy(buf[64:], frame)
			if v, _ := r.p.Process(r.snap, buf, 64, len(frame)); v != VerdictForward {
				t.Fatalf("verdict %d", v)
			}
		})
		if allocs != 0 {
			t.Errorf("persist=%v: %.1f allocations per datagram, want 0", persist, allocs)
		}
	}
}

// BenchmarkOnePacketRatio measures, in interleaved rounds of 1000 frames
// so that a loaded machine's noise hits each alike, what a UDP datagram
// costs: of an ordinary service whose connection exists (hit), of a
// one-packet rr service (ops: a missed lookup, the scheduler, no
// insert), of a one-packet rr service with persistence (ops-persist: a
// missed lookup, a template found and re-armed), and, for scale, of an
// ordinary service where each datagram is a new connection (new: a new
// client port each, inserted). It reports each one's median round in
// ns per frame and the ratios to hit.
func BenchmarkOnePacketRatio(b *testing.B) {
	vipOPS, vipPers := netip.MustParseAddr("198.19.0.8"), netip.MustParseAddr("198.19.0.9")
	tbl := opsTable(b, "rr", false, vs.Route, nil)
	for _, s := range []vs.Service{
		{Key: vs.Key{Proto: vs.UDP, Addr: vipOPS, Port: 53}, Sched: "rr", OnePacket: true},
		{Key: vs.Key{Proto: vs.UDP, Addr: vipPers, Port: 53}, Sched: "rr", OnePacket: true, Persistent: true, Timeout: 300},
	} {
		for _, a := range opsRS {
			s.Reals = append(s.Reals, vs.Real{Addr: a, Port: 53, Fwd: vs.Route, Weight: 1})
		}
		if err := tbl.AddService(s); err != nil {
			b.Fatal(err)
		}
	}
	r := newFxRig(b, 1<<20, 1024)
	r.apply(b, tbl)
	client := netip.MustParseAddr("198.18.1.10")
	frames := [4][]byte{
		dgram(b, opsVIP, 53, fxFrom(client)),
		dgram(b, vipOPS, 53, fxFrom(client)),
		dgram(b, vipPers, 53, fxFrom(client)),
		dgram(b, opsVIP, 53, fxFrom(netip.MustParseAddr("198.18.2.10"))),
	}
	names := [4]string{"hit", "ops", "ops-persist", "new"}
	if v, _, _ := r.run(frames[0], 256); v != VerdictForward {
		b.Fatal("setup datagram dropped")
	}
	buf := make([]byte, 2048)
	const round = 1000
	var rounds [4][]float64
	var port uint16
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(frames) * round {
		for i, f := range frames {
			start := time.Now()
			for range round {
				copy(buf[256:], f)
				if i == 3 {
					port++
					buf[256+34], buf[256+35] = byte(port>>8), byte(port)
				}
				if v, _ := r.p.Process(r.snap, buf, 256, len(f)); v != VerdictForward {
					b.Fatalf("%s: dropped", names[i])
				}
			}
			rounds[i] = append(rounds[i], float64(time.Since(start).Nanoseconds())/round)
		}
		if port > 60000 {
			// The new datagrams' connections: expire them, so the table
			// does not fill and every port is new again.
			b.StopTimer()
			r.clock.Advance(time.Hour)
			r.ct.Sweep(1 << 22)
			port = 0
			b.StartTimer()
		}
	}
	b.StopTimer()
	med := func(x []float64) float64 {
		y := append([]float64(nil), x...)
		sort.Float64s(y)
		return y[len(y)/2]
	}
	hit := med(rounds[0])
	for i, n := range names {
		m := med(rounds[i])
		b.ReportMetric(m, n+"-ns/frame")
		if i > 0 {
			b.ReportMetric(m/hit, n+"/hit")
		}
	}
}
