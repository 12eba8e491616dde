package dataplane

import (
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

var (
	fxVIPNAT = netip.MustParseAddr("198.19.0.6")
	fxRSNAT  = netip.MustParseAddr("198.18.2.61")
)

// fromRS is a frame the NAT real server sends the client: a reply from
// its port sport to the client's port 40000.
func fromRS(t testing.TB, sport uint16, flags ts.TCPFlags, opts ...fxOpt) []byte {
	t.Helper()
	f := fxFrame{sport: 40000, client: fxClient, df: true, payload: 10}
	for _, o := range opts {
		o(&f)
	}
	return ts.Build(t, ts.Eth(fxMAC(fxRSNAT), fxDirMAC), ipHeaderFrom(fxRSNAT, f.client, f.df), ts.TCP(sport, f.sport, flags), ts.Payload(f.payload))
}

func udpFromRS(t testing.TB, sport uint16) []byte {
	t.Helper()
	return ts.Build(t, ts.Eth(fxMAC(fxRSNAT), fxDirMAC), ipHeaderFrom(fxRSNAT, fxClient, true), ts.UDP(sport, 40000), ts.Payload(10))
}

// dnat is the client's packet as the NAT real server must get it: to its
// address and port, everything else as the client sent it; the checker
// verifies the IP and TCP/UDP checksums in full.
func dnat(rport uint16, proto func(...c.Checker) c.Checker, more ...c.Checker) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)),
		c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT), c.TTL(63), c.TOS(0x10), c.ID(4242), c.NotTunnelled(),
			proto(append([]c.Checker{c.SrcPort(40000), c.DstPort(rport), c.Payload(ts.Payload(10))}, more...)...))}
}

// snat is the real server's reply as the client must get it: from the
// VIP and the service's port, to the MAC the client's packets came from.
func snat(vport uint16, proto func(...c.Checker) c.Checker, more ...c.Checker) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC),
		c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.TTL(63), c.TOS(0x10), c.ID(4242),
			proto(append([]c.Checker{c.SrcPort(vport), c.DstPort(40000), c.Payload(ts.Payload(10))}, more...)...))}
}

func natFixtures(t testing.TB) []fixture {
	big := fxPayload(1500 - 40 + 1)
	return []fixture{
		{name: "NAT TCP SYN: to the real server's address and port", in: seg(t, fxVIPNAT, 80), verdict: VerdictForward, drop: noDrop,
			out: dnat(8080, c.TCP, c.TCPFlags(ts.SYN))},
		{name: "NAT reply SYN-ACK: from the VIP and service port", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: fromRS(t, 8080, ts.SYN|ts.ACK), verdict: VerdictForward, drop: noDrop, out: snat(80, c.TCP, c.TCPFlags(ts.SYN|ts.ACK))},
		{name: "NAT established ACK", prep: sendFirst(seg(t, fxVIPNAT, 80), fromRS(t, 8080, ts.SYN|ts.ACK)),
			in: seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), verdict: VerdictForward, drop: noDrop, out: dnat(8080, c.TCP, c.TCPFlags(ts.ACK))},
		{name: "NAT UDP", in: dgram(t, fxVIPNAT, 53), verdict: VerdictForward, drop: noDrop, out: dnat(5353, c.UDP)},
		{name: "NAT UDP reply", prep: sendFirst(dgram(t, fxVIPNAT, 53)), in: udpFromRS(t, 5353), verdict: VerdictForward, drop: noDrop,
			out: snat(53, c.UDP)},
		{name: "NAT reply without a connection", in: fromRS(t, 8080, ts.ACK), verdict: VerdictDrop, drop: DropReplyNoConnection},
		{name: "NAT reply to another client port", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: fromRS(t, 8080, ts.ACK, fxSport(40001)), verdict: VerdictDrop, drop: DropReplyNoConnection},
		{name: "NAT DF over MTU: ICMP quotes the client's packet", in: seg(t, fxVIPNAT, 80, big), verdict: VerdictReply,
			drop: DropFragNeeded, out: fragNeeded(fxVIPNAT, 1500, 80)},
		{name: "NAT no DF over MTU: two rewritten fragments", in: seg(t, fxVIPNAT, 80, big, noDF), verdict: VerdictForward, drop: noDrop,
			out:    []c.Checker{c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT), c.MoreFragments(true))},
			second: []c.Checker{c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.DstAddr(fxRSNAT), c.MoreFragments(false))}},
		{name: "NAT reply DF over MTU: ICMP to the real server quotes its reply", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: fromRS(t, 8080, ts.ACK, big), verdict: VerdictReply, drop: DropFragNeeded,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)),
				c.IPv4(c.SrcAddr(fxDir), c.DstAddr(fxRSNAT), c.ICMPv4(c.ICMPType(3, 4), c.ICMPMTU(1500),
					c.Embedded(c.SrcAddr(fxRSNAT), c.DstAddr(fxClient), c.SrcPort(8080), c.DstPort(40000))))}},
		{name: "NAT reply DF over MTU, ICMP rate limited", prep: sendFirst(seg(t, fxVIPNAT, 80)), icmpLimited: true,
			in: fromRS(t, 8080, ts.ACK, big), verdict: VerdictDrop, drop: DropICMPLimited},
		{name: "NAT reply no DF over MTU: two fragments from the VIP", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: fromRS(t, 8080, ts.ACK, big, noDF), verdict: VerdictForward, drop: noDrop,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC),
				c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.MoreFragments(true), c.FragmentOffset(0))},
			second: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.MoreFragments(false))}},
	}
}

// TestNATStateAndCounters: a whole TCP exchange through a NAT service
// moves the connection by IPVS's INPUT and OUTPUT tables (the server's
// SYN-ACK keeps SYN_RECV, the client's ACK makes it ESTABLISHED, a client
// FIN is CLOSE_WAIT), and the replies count as OutPkts/OutBytes of the
// service and the real server, IP-layer bytes, as in IPVS.
func TestNATStateAndCounters(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	key := conntrack.Key{CAddr: fxClient.As16(), VAddr: fxVIPNAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	steps := []struct {
		in    []byte
		state conntrack.State
	}{
		{seg(t, fxVIPNAT, 80), conntrack.SynRecv},
		{fromRS(t, 8080, ts.SYN|ts.ACK), conntrack.SynRecv},
		{seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), conntrack.Established},
		{fromRS(t, 8080, ts.ACK), conntrack.Established},
		{seg(t, fxVIPNAT, 80, fxFlags(ts.FIN|ts.ACK)), conntrack.CloseWait},
		{fromRS(t, 8080, ts.FIN|ts.ACK), conntrack.TimeWait},
	}
	var outBytes uint64
	for i, s := range steps {
		if v, _, _ := r.run(s.in, 256); v != VerdictForward {
			t.Fatalf("step %d: verdict %d", i, v)
		}
		if i%2 == 1 {
			outBytes += uint64(len(s.in) - 14)
		}
		cn, ok := r.ct.Lookup(&key)
		if !ok || cn.State != s.state {
			t.Fatalf("step %d: state %v (found %v), want %v", i, cn.State, ok, s.state)
		}
	}
	svc, ok := r.snap.ServiceByKey(r.snap.Services[len(r.snap.Services)-2].Key)
	if !ok || svc.Key.Addr != fxVIPNAT {
		t.Fatal("NAT service not found")
	}
	st, dt := r.c.Service(svc.ID), r.c.Dest(svc.Dests[0].ID)
	if st.OutPkts != 3 || st.OutBytes != outBytes || dt.OutPkts != 3 || dt.OutBytes != outBytes || st.InPkts != 3 || st.Conns != 1 {
		t.Fatalf("service %+v, dest %+v: want 3 in, 3 out of %d bytes, 1 conn", st, dt, outBytes)
	}
}

// TestNATUDPChecksumZero: a UDP datagram sent without a checksum (0)
// keeps none in both directions; one with a checksum gets it updated,
// and an update that makes it 0 sends 0xffff (RFC 768).
func TestNATUDPChecksumZero(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	noSum := func(f []byte) []byte {
		f = append([]byte(nil), f...)
		f[14+20+6], f[14+20+7] = 0, 0
		return f
	}
	v, out, _ := r.run(noSum(dgram(t, fxVIPNAT, 53)), 256)
	if v != VerdictForward || binary.BigEndian.Uint16(out[14+20+6:]) != 0 || binary.BigEndian.Uint16(out[14+20+2:]) != 5353 {
		t.Fatalf("client datagram without checksum: verdict %d, out %x", v, out)
	}
	if !header.IPv4(out[14:]).IsChecksumValid() {
		t.Fatal("IP checksum wrong after the rewrite")
	}
	v, out, _ = r.run(noSum(udpFromRS(t, 5353)), 256)
	if v != VerdictForward || binary.BigEndian.Uint16(out[14+20+6:]) != 0 || binary.BigEndian.Uint16(out[14+20:]) != 53 {
		t.Fatalf("reply without checksum: verdict %d, out %x", v, out)
	}

	// Find a payload whose datagram, after the rewrite, sums to exactly
	// zero: the one case where the update must write 0xffff.
	var pk header.Packet
	for w := 0; w < 1<<16; w++ {
		f := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeader(fxVIPNAT, true), ts.UDP(40000, 53), ts.RawPayload([]byte{byte(w >> 8), byte(w)}))
		if header.Parse(f, &pk) != header.OK {
			t.Fatal("parse")
		}
		want := f[:0:0]
		want = append(want, f...)
		copy(want[14+16:], fxRSNAT.AsSlice())
		binary.BigEndian.PutUint16(want[14+20+2:], 5353)
		want[14+20+6], want[14+20+7] = 0, 0
		l4 := want[14+20 : 14+20+8+2] // not the Ethernet padding
		sum := header.Checksum(l4, header.PseudoHeaderChecksum(17, fxClient.As4(), fxRSNAT.As4(), uint16(len(l4))))
		if ^sum != 0 {
			continue
		}
		rewrite(f, &pk, true, fxRSNAT.As4(), 5353)
		if got := binary.BigEndian.Uint16(f[14+20+6:]); got != 0xffff {
			t.Fatalf("payload %#04x: checksum %#04x after the rewrite, want 0xffff", w, got)
		}
		c.Frame(t, f, c.IPv4(c.UDP(c.DstPort(5353))))
		return
	}
	t.Fatal("no payload makes the rewritten checksum 0")
}

// TestNATAllocs: neither direction of an established NAT flow allocates.
func TestNATAllocs(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	for _, f := range [][]byte{seg(t, fxVIPNAT, 80), fromRS(t, 8080, ts.SYN|ts.ACK), seg(t, fxVIPNAT, 80, fxFlags(ts.ACK))} {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			t.Fatal("handshake")
		}
	}
	b := make([]byte, 2048)
	for name, f := range map[string][]byte{"in": seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), "out": fromRS(t, 8080, ts.ACK)} {
		allocs := testing.AllocsPerRun(1000, func() {
			copy(b[256:], f)
			if v, _ := r.p.Process(r.snap, b, 256, len(f)); v != VerdictForward {
				t.Fatalf("%s: dropped", name)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per frame", name, allocs)
		}
	}
}

// TestNATSteeringKeys: the snapshot asks the steering program for the
// NAT real server's replies by source, besides the services.
func TestNATSteeringKeys(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	want := map[SteerKey]bool{
		{Addr: fxRSNAT, Proto: 6, Port: 8080, Source: true}:  true,
		{Addr: fxRSNAT, Proto: 17, Port: 5353, Source: true}: true,
		{Addr: fxVIPNAT, Proto: 6, Port: 80}:                 true,
	}
	n := 0
	for _, k := range r.snap.SteeringKeys() {
		if k.Source {
			n++
		}
		delete(want, k)
	}
	if len(want) != 0 || n != 2 {
		t.Fatalf("missing keys %v; %d source keys, want 2", want, n)
	}
	if !r.snap.HasNAT() {
		t.Fatal("HasNAT false")
	}
}

// BenchmarkNAT is the per-frame cost of an established VS/NAT flow in
// each direction beside an established DR flow, in one run, on one
// processor and table, so the three compare as ratios.
func BenchmarkNAT(b *testing.B) {
	r := newFxRig(b, 1<<16, 64)
	for _, f := range [][]byte{seg(b, fxVIPDR, 80), seg(b, fxVIPNAT, 80), fromRS(b, 8080, ts.SYN|ts.ACK), seg(b, fxVIPNAT, 80, fxFlags(ts.ACK))} {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			b.Fatal("setup frame dropped")
		}
	}
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"DR", seg(b, fxVIPDR, 80, fxFlags(ts.ACK))},
		{"NAT-in", seg(b, fxVIPNAT, 80, fxFlags(ts.ACK))},
		{"NAT-out", fromRS(b, 8080, ts.ACK)},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 2048)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[256:], c.frame)
				if v, _ := r.p.Process(r.snap, buf, 256, len(c.frame)); v != VerdictForward {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// BenchmarkNATRatio measures the three frames of BenchmarkNAT in
// interleaved rounds of 1000 frames and keeps each one's fastest round,
// so that a loaded machine's noise hits all three alike; it reports ns
// per frame of each and the NAT/DR ratios. It also runs replies of 64
// connections the way a worker does, a batch at a time (Parse,
// LookupBatch, ProcessParsed), twice per round: as LookupBatch runs them
// (NAT-out-batch) and with the batched lookup of their forward keys that
// LookupBatch made before it left VS/NAT replies out (NAT-out-batch-old),
// and reports both and old/new.
func BenchmarkNATRatio(b *testing.B) {
	r := newFxRig(b, 1<<16, 64)
	for _, f := range [][]byte{seg(b, fxVIPDR, 80), seg(b, fxVIPNAT, 80), fromRS(b, 8080, ts.SYN|ts.ACK), seg(b, fxVIPNAT, 80, fxFlags(ts.ACK))} {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			b.Fatal("setup frame dropped")
		}
	}
	var replies [Batch][]byte
	for i := range replies {
		port := fxSport(41000 + uint16(i))
		for _, f := range [][]byte{seg(b, fxVIPNAT, 80, port), fromRS(b, 8080, ts.SYN|ts.ACK, port), seg(b, fxVIPNAT, 80, fxFlags(ts.ACK), port)} {
			if v, _, _ := r.run(f, 256); v != VerdictForward {
				b.Fatal("setup frame dropped")
			}
		}
		replies[i] = fromRS(b, 8080, ts.ACK, port)
	}
	frames := [3][]byte{seg(b, fxVIPDR, 80, fxFlags(ts.ACK)), seg(b, fxVIPNAT, 80, fxFlags(ts.ACK)), fromRS(b, 8080, ts.ACK)}
	best := [5]time.Duration{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
	buf := make([]byte, 2048)
	bufs := make([][]byte, Batch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	var parsed [Batch]Parsed
	var keys [Batch]conntrack.Key
	var conns [Batch]conntrack.Conn
	var found [Batch]bool
	batch := func(old bool) {
		for i, f := range replies {
			copy(bufs[i][256:], f)
			r.p.Parse(bufs[i][256:256+len(f)], &parsed[i])
		}
		r.p.LookupBatch(r.snap, parsed[:])
		if old {
			for i := range parsed {
				keyOf(&parsed[i].Pkt, &keys[i])
			}
			r.ct.LookupBatch(keys[:], conns[:], found[:])
		}
		for i, f := range replies {
			if v, _ := r.p.ProcessParsed(r.snap, bufs[i], 256, len(f), &parsed[i]); v != VerdictForward {
				b.Fatal("dropped")
			}
		}
	}
	const round = 1000
	const batches = (round + Batch - 1) / Batch
	// b.N counts frames, so -benchtime Nx runs about N frames.
	perPass := len(frames)*round + 2*batches*Batch
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += perPass {
		for i, f := range frames {
			start := time.Now()
			for range round {
				copy(buf[256:], f)
				if v, _ := r.p.Process(r.snap, buf, 256, len(f)); v != VerdictForward {
					b.Fatal("dropped")
				}
			}
			best[i] = min(best[i], time.Since(start))
		}
		for i, old := range []bool{false, true} {
			start := time.Now()
			for range batches {
				batch(old)
			}
			best[3+i] = min(best[3+i], time.Since(start))
		}
	}
	ns := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / round }
	nsb := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / (batches * Batch) }
	b.ReportMetric(ns(best[0]), "DR-ns/frame")
	b.ReportMetric(ns(best[1]), "NAT-in-ns/frame")
	b.ReportMetric(ns(best[2]), "NAT-out-ns/frame")
	b.ReportMetric(ns(best[1])/ns(best[0]), "in/DR")
	b.ReportMetric(ns(best[2])/ns(best[0]), "out/DR")
	b.ReportMetric(nsb(best[3]), "NAT-out-batch-ns/frame")
	b.ReportMetric(nsb(best[4]), "NAT-out-batch-old-ns/frame")
	b.ReportMetric(nsb(best[4])/nsb(best[3]), "batch-old/new")
}

// egressOnly routes everything through slot 1, an interface afvs only
// sends on.
type egressOnly struct{ StaticResolver }

func (egressOnly) Route(dst netip.Addr) (Route, error) {
	return Route{Slot: 1, NextHop: dst, EgressOnly: true}, nil
}

// TestNATRealServerBehindEgressOnlyInterface: a NAT real server reached
// through an interface afvs does not receive on is unreachable, with the
// reason, as its replies could never come back to afvs; a DR one there is
// fine.
func TestNATRealServerBehindEgressOnlyInterface(t *testing.T) {
	snap, err := Build(fixtureTable(t), BuildOptions{Registry: NewRegistry(), Loads: sched.NewLoads(MaxDests), Resolver: egressOnly{},
		Ifaces: []Iface{{Slot: 0, Name: "eth0", MTU: 1500}, {Slot: 1, Name: "eth1", MTU: 1500}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snap.Services {
		for _, d := range s.Dests {
			nat := d.Fwd == vs.Masq
			if nat != (d.Unreachable != "") || nat && (d.Slot != -1 || !strings.Contains(d.Unreachable, "eth1, an interface afvs only sends on")) {
				t.Errorf("%v %v: slot %d, unreachable %q", s.Key, d.Fwd, d.Slot, d.Unreachable)
			}
		}
	}
}

// natICMPFrame is an ICMP error type/code from src to dst (MACs from -> to)
// quoting the IPv4 header and first 8 bytes of embedded, as routers do.
func natICMPFrame(t testing.TB, from, to net.HardwareAddr, src, dst netip.Addr, typ, code uint8, embedded []byte) []byte {
	t.Helper()
	return ts.Build(t, ts.Eth(from, to), ipHeaderFrom(src, dst, false),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Seq: 1400}, ts.RawPayload(embedded[:28]))
}

// ipPacket is the IPv4 packet (no Ethernet header) of layers.
func ipPacket(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return ts.Build(t, ls...)
}

func natICMPFixtures(t testing.TB) []fixture {
	// What the real server got: client:40000 -> RIP:5353 (UDP), or
	// client:40000 -> RIP:8080 (TCP).
	toRSUDP := ipPacket(t, ipHeaderFrom(fxClient, fxRSNAT, true), ts.UDP(40000, 5353), ts.Payload(10))
	toRSTCP := ipPacket(t, ipHeaderFrom(fxClient, fxRSNAT, true), ts.TCP(40000, 8080, ts.ACK), ts.Payload(10))
	// What the client got: VIP:80 -> client:40000.
	toClient := ipPacket(t, ipHeaderFrom(fxVIPNAT, fxClient, true), ts.TCP(80, 40000, ts.SYN|ts.ACK), ts.Payload(10))
	router := netip.MustParseAddr("198.18.0.1")
	badSum := natICMPFrame(t, fxMAC(fxRSNAT), fxDirMAC, fxRSNAT, fxClient, 3, 3, toRSUDP)
	badSum[14+20+2]++ // the ICMP checksum
	return []fixture{
		{name: "NAT ICMP port unreachable from the real server", prep: sendFirst(dgram(t, fxVIPNAT, 53)),
			in: natICMPFrame(t, fxMAC(fxRSNAT), fxDirMAC, fxRSNAT, fxClient, 3, 3, toRSUDP), verdict: VerdictForward, drop: noDrop,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient),
				c.ICMPv4(c.ICMPType(3, 3), c.Embedded(c.SrcAddr(fxClient), c.DstAddr(fxVIPNAT), c.SrcPort(40000), c.DstPort(53))))}},
		{name: "NAT ICMP time exceeded from a router on the real servers' side", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: natICMPFrame(t, fxMAC(router), fxDirMAC, router, fxClient, 11, 0, toRSTCP), verdict: VerdictForward, drop: noDrop,
			out: []c.Checker{c.DstMAC(fxClientMAC), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient),
				c.ICMPv4(c.ICMPType(11, 0), c.Embedded(c.SrcAddr(fxClient), c.DstAddr(fxVIPNAT), c.SrcPort(40000), c.DstPort(80))))}},
		{name: "NAT ICMP fragmentation needed from the client's side", prep: sendFirst(seg(t, fxVIPNAT, 80)),
			in: natICMPFrame(t, fxClientMAC, fxDirMAC, fxClient, fxVIPNAT, 3, 4, toClient), verdict: VerdictForward, drop: noDrop,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT),
				c.ICMPv4(c.ICMPType(3, 4), c.ICMPMTU(1400), c.Embedded(c.SrcAddr(fxRSNAT), c.DstAddr(fxClient), c.SrcPort(8080), c.DstPort(40000))))}},
		{name: "NAT ICMP with a bad checksum", prep: sendFirst(dgram(t, fxVIPNAT, 53)), in: badSum,
			verdict: VerdictDrop, parse: header.BadChecksum},
		// Not a NAT connection's: the DR/TUN ICMP path's to judge.
		{name: "NAT ICMP about no connection", in: natICMPFrame(t, fxMAC(fxRSNAT), fxDirMAC, fxRSNAT, fxClient, 3, 3, toRSUDP),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
	}
}

// TestNATReplyTooBig: a reply with DF over the client-facing MTU is
// answered before IPVS would see it (ip_forward's check precedes the
// FORWARD hook): the connection's state and the out counters stay. One
// without DF is counted out once, at its full length, and its two
// fragments reassemble into the rewritten reply, checksums right.
func TestNATReplyTooBig(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	key := conntrack.Key{CAddr: fxClient.As16(), VAddr: fxVIPNAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	if v, _, _ := r.run(seg(t, fxVIPNAT, 80), 256); v != VerdictForward {
		t.Fatalf("SYN: verdict %d", v)
	}
	big := fxPayload(1500 - 40 + 1)
	if v, _, _ := r.run(fromRS(t, 8080, ts.SYN|ts.ACK, big), 256); v != VerdictReply {
		t.Fatalf("DF reply over the MTU: verdict %d, want the ICMP reply", v)
	}
	svc, _ := r.snap.ServiceByKey(vs.Key{Proto: vs.TCP, Addr: fxVIPNAT, Port: 80})
	if st := r.c.Service(svc.ID); st.OutPkts != 0 {
		t.Fatalf("a reply answered with ICMP counted %d out", st.OutPkts)
	}
	if cn, ok := r.ct.Lookup(&key); !ok || cn.State != conntrack.SynRecv {
		t.Fatalf("state %v (found %v) after a refused reply, want SYN_RECV", cn.State, ok)
	}
	in := fromRS(t, 8080, ts.ACK, big, noDF)
	v, first, second := r.run(in, 256)
	if v != VerdictForward || second == nil {
		t.Fatalf("reply without DF over the MTU: verdict %d, second fragment %v", v, second != nil)
	}
	if st := r.c.Service(svc.ID); st.OutPkts != 1 || st.OutBytes != uint64(len(in)-14) {
		t.Fatalf("fragmented reply counted %d out, %d bytes; want 1 and %d", st.OutPkts, st.OutBytes, len(in)-14)
	}
	var ips [2]*layers.IPv4
	for i, f := range [][]byte{first, second} {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("fragment %d does not decode: %v", i, p)
		}
		ips[i] = ip
	}
	if int(ips[1].FragOffset)*8 != len(ips[0].Payload) {
		t.Fatalf("second fragment at %d, first carries %d bytes", int(ips[1].FragOffset)*8, len(ips[0].Payload))
	}
	whole := *ips[0]
	whole.Flags &^= layers.IPv4MoreFragments
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&whole, gopacket.Payload(append(append([]byte(nil), ips[0].Payload...), ips[1].Payload...))); err != nil {
		t.Fatal(err)
	}
	c.IPv4Packet(t, buf.Bytes(), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient),
		c.TCP(c.SrcPort(80), c.DstPort(40000), c.TCPFlags(ts.ACK), c.PayloadLen(1500-40+1))))
}

// TestLookupBatchSkipsReplies: the batched pre-pass looks up a client
// frame's connection but not a VS/NAT reply's forward key, which could
// only miss; both frames then go through as Process would take them.
func TestLookupBatchSkipsReplies(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	if v, _, _ := r.run(seg(t, fxVIPNAT, 80), 256); v != VerdictForward {
		t.Fatalf("SYN: verdict %d", v)
	}
	frames := [][]byte{seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), fromRS(t, 8080, ts.SYN|ts.ACK), seg(t, fxVIPDR, 80)}
	parsed := make([]Parsed, len(frames))
	for i, f := range frames {
		r.p.Parse(f, &parsed[i])
	}
	r.p.LookupBatch(r.snap, parsed)
	if !parsed[0].looked || !parsed[0].hit || parsed[1].looked || !parsed[2].looked || parsed[2].hit {
		t.Fatalf("looked up (found): client %v (%v), reply %v, new DR flow %v (%v); want the client's and the DR flow's only",
			parsed[0].looked, parsed[0].hit, parsed[1].looked, parsed[2].looked, parsed[2].hit)
	}
	for i, f := range frames {
		buf := make([]byte, maxFrame)
		copy(buf[256:], f)
		if v, _ := r.p.ProcessParsed(r.snap, buf, 256, len(f), &parsed[i]); v != VerdictForward {
			t.Fatalf("frame %d: verdict %d", i, v)
		}
	}
	svc, _ := r.snap.ServiceByKey(vs.Key{Proto: vs.TCP, Addr: fxVIPNAT, Port: 80})
	if st := r.c.Service(svc.ID); st.InPkts != 2 || st.OutPkts != 1 {
		t.Fatalf("NAT service in %d out %d, want 2 and 1", st.InPkts, st.OutPkts)
	}
}
