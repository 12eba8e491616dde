package dataplane

import (
	"bytes"
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// The IPv6 VS/NAT fixtures: fixtureTable6 and, on interface 0 (2001:2::2,
// MTU 1500),
//
//	[2001:2:0:1::8]:80  tcp  NAT -> [2001:2::81]:8080
//	[2001:2:0:1::8]:53  udp  NAT -> [2001:2::81]:5353
var (
	fxVIP6NAT = netip.MustParseAddr("2001:2:0:1::8")
	fxRS6NAT  = netip.MustParseAddr("2001:2::81")
)

func natTable6(t testing.TB) *vs.Table {
	t.Helper()
	tbl := fixtureTable6(t)
	for _, s := range []vs.Service{
		{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6NAT, Port: 80}, Sched: "rr", Reals: []vs.Real{{Addr: fxRS6NAT, Port: 8080, Fwd: vs.Masq, Weight: 1}}},
		{Key: vs.Key{Proto: vs.UDP, Addr: fxVIP6NAT, Port: 53}, Sched: "rr", Reals: []vs.Real{{Addr: fxRS6NAT, Port: 5353, Fwd: vs.Masq, Weight: 1}}},
	} {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

func newNATRig6(t testing.TB, capacity int) *fxRig {
	t.Helper()
	r := newFxRig(t, capacity, 64)
	snap, err := Build(natTable6(t), BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap,
		Resolver: StaticResolver{MACs: map[netip.Addr][6]byte{fxRS6Unres: {}}}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
	return r
}

// pkt6 is an IPv6 TCP segment or UDP datagram, built whole by gopacket
// (checksums computed from scratch): the frames the tests send and the
// frames they expect, compared byte for byte.
type pkt6 struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	hop            uint8
	flags          ts.TCPFlags
	udp            bool
	payload        int
	exts           []ext6 // extension headers before the TCP or UDP header
}

func (f pkt6) build(t testing.TB) []byte {
	t.Helper()
	ip := &layers.IPv6{TrafficClass: 0x28, FlowLabel: 0x12345, HopLimit: f.hop, SrcIP: f.src.AsSlice(), DstIP: f.dst.AsSlice()}
	var l4 gopacket.SerializableLayer = ts.TCP(f.sport, f.dport, f.flags)
	if f.udp {
		l4 = ts.UDP(f.sport, f.dport)
	}
	b := ts.Build(t, ts.Eth(f.srcMAC, f.dstMAC), ip, l4, ts.Payload(f.payload))
	return withExts(b, f.exts...)
}

// withExts puts extension headers between b's IPv6 header and its upper
// layer, which keeps its checksum (the pseudo-header has no room for
// them).
func withExts(b []byte, exts ...ext6) []byte {
	if len(exts) == 0 {
		return b
	}
	next := b[14+6]
	var chain []byte
	for i := len(exts) - 1; i >= 0; i-- {
		h := append([]byte{next, byte((len(exts[i].body)+2)/8 - 1)}, exts[i].body...)
		chain = append(h, chain...)
		next = exts[i].typ
	}
	out := append(append(append([]byte(nil), b[:54]...), chain...), b[54:]...)
	out[14+6] = next
	binary.BigEndian.PutUint16(out[18:20], uint16(len(out)-54))
	return out
}

// The four views of one connection: the client's packet to the VIP and as
// the real server gets it, the server's reply and as the client gets it.
func toVIP6(o ...func(*pkt6)) pkt6 {
	f := pkt6{srcMAC: fxClientMAC, dstMAC: fxDirMAC, src: fxClient6, dst: fxVIP6NAT, sport: 40000, dport: 80, hop: 64, flags: ts.SYN, payload: 10}
	for _, fn := range o {
		fn(&f)
	}
	if f.udp {
		f.dport = 53
	}
	return f
}

func toRS6(o ...func(*pkt6)) pkt6 {
	f := toVIP6(o...)
	f.srcMAC, f.dstMAC, f.dst, f.dport, f.hop = fxDirMAC, fxMAC(fxRS6NAT), fxRS6NAT, rport6(f.udp), f.hop-1
	return f
}

func fromRS6(o ...func(*pkt6)) pkt6 {
	f := toVIP6(o...)
	f.srcMAC, f.dstMAC, f.src, f.dst = fxMAC(fxRS6NAT), fxDirMAC, fxRS6NAT, fxClient6
	f.sport, f.dport = rport6(f.udp), f.sport
	return f
}

func toClient6(o ...func(*pkt6)) pkt6 {
	f := fromRS6(o...)
	f.srcMAC, f.dstMAC, f.src, f.sport, f.hop = fxDirMAC, fxClientMAC, fxVIP6NAT, 80, f.hop-1
	if f.udp {
		f.sport = 53
	}
	return f
}

func rport6(udp bool) uint16 {
	if udp {
		return 5353
	}
	return 8080
}

func n6Flags(fl ts.TCPFlags) func(*pkt6) { return func(f *pkt6) { f.flags = fl } }
func n6UDP(f *pkt6)                      { f.udp = true }
func n6Hop(h uint8) func(*pkt6)          { return func(f *pkt6) { f.hop = h } }
func n6Sport(p uint16) func(*pkt6)       { return func(f *pkt6) { f.sport = p } }
func n6Payload(n int) func(*pkt6)        { return func(f *pkt6) { f.payload = n } }
func n6Exts(e ...ext6) func(*pkt6)       { return func(f *pkt6) { f.exts = e } }

// icmp6Err is an ICMPv6 error of type typ and code from src to dst,
// quoting quote (an IPv6 packet from its header on), checksum computed by
// gopacket.
func icmp6Err(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, hop, typ, code uint8, quote []byte) []byte {
	t.Helper()
	ip := &layers.IPv6{HopLimit: hop, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	m := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	body := append(make([]byte, 4), quote...)
	return ts.Build(t, ts.Eth(srcMAC, dstMAC), ip, m, ts.RawPayload(body))
}

// quoteAs returns the IPv6 packet of frame with its source (src) or
// destination address and port replaced, its TCP or UDP checksum left as
// it was: what a translated ICMPv6 error must quote.
func quoteAs(frame []byte, src bool, a netip.Addr, port uint16) []byte {
	q := append([]byte(nil), frame[14:]...)
	aoff, poff := 24, 2
	if src {
		aoff, poff = 8, 0
	}
	a16 := a.As16()
	copy(q[aoff:aoff+16], a16[:])
	var pk header.Packet
	if header.Parse(frame, &pk) != header.OK {
		panic("quoteAs: frame does not parse")
	}
	binary.BigEndian.PutUint16(q[pk.L4-14+poff:], port)
	return q
}

type natFixture6 struct {
	name        string
	prep        func(testing.TB, *fxRig)
	in          []byte
	icmpLimited bool
	verdict     Verdict
	drop        Drop          // noDrop for none
	parse       header.Reason // a parse counter that moves by one (OK: none)
	want        []byte        // the frame out, byte for byte
	check       func(t testing.TB, out []byte)
}

func nat6Fixtures(t testing.TB) []natFixture6 {
	syn := toVIP6().build(t)
	estab := func(o ...func(*pkt6)) func(testing.TB, *fxRig) {
		return sendFirst(toVIP6(o...).build(t))
	}
	big := n6Payload(1501 - 40 - 20) // a TCP packet of 1501 bytes
	bigIn := toVIP6(big).build(t)
	bigInAfterHop := append([]byte(nil), bigIn...)
	bigInAfterHop[14+7]--
	bigReply := fromRS6(n6Flags(ts.ACK), big).build(t)
	hop1In := toVIP6(n6Hop(1)).build(t)
	hop1Reply := fromRS6(n6Flags(ts.ACK), n6Hop(1)).build(t)
	rsErr := func() []byte { // port unreachable from the real server about the SYN it got
		return icmp6Err(t, fxMAC(fxRS6NAT), fxDirMAC, fxRS6NAT, fxClient6, 64, 1, 4, toRS6().build(t)[14:])
	}
	clientErr := func() []byte { // a router's time exceeded about a reply the client got
		return icmp6Err(t, fxClientMAC, fxDirMAC, fxClient6, fxVIP6NAT, 64, 3, 0, toClient6(n6Flags(ts.SYN | ts.ACK)).build(t)[14:])
	}
	badSum := rsErr()
	badSum[len(badSum)-1] ^= 0xff
	return []natFixture6{
		{name: "TCP SYN: to the real server's address and port, hop limit less one", in: syn, verdict: VerdictForward, drop: noDrop,
			want: toRS6().build(t)},
		{name: "UDP", in: toVIP6(n6UDP).build(t), verdict: VerdictForward, drop: noDrop, want: toRS6(n6UDP).build(t)},
		{name: "through hop-by-hop and destination options headers", in: toVIP6(n6Exts(ext6{0, fxPad6}, ext6{60, fxPad6})).build(t),
			verdict: VerdictForward, drop: noDrop, want: toRS6(n6Exts(ext6{0, fxPad6}, ext6{60, fxPad6})).build(t)},
		{name: "reply SYN-ACK: from the VIP and service port", prep: estab(), in: fromRS6(n6Flags(ts.SYN | ts.ACK)).build(t),
			verdict: VerdictForward, drop: noDrop, want: toClient6(n6Flags(ts.SYN | ts.ACK)).build(t)},
		{name: "UDP reply", prep: estab(n6UDP), in: fromRS6(n6UDP).build(t), verdict: VerdictForward, drop: noDrop,
			want: toClient6(n6UDP).build(t)},
		{name: "established ACK", prep: sendFirst(syn, fromRS6(n6Flags(ts.SYN|ts.ACK)).build(t)), in: toVIP6(n6Flags(ts.ACK)).build(t),
			verdict: VerdictForward, drop: noDrop, want: toRS6(n6Flags(ts.ACK)).build(t)},
		{name: "reply without a connection", in: fromRS6(n6Flags(ts.ACK)).build(t), verdict: VerdictDrop, drop: DropReplyNoConnection},
		{name: "reply to another client port", prep: estab(), in: fromRS6(n6Flags(ts.ACK), n6Sport(40001)).build(t),
			verdict: VerdictDrop, drop: DropReplyNoConnection},
		{name: "client packet with hop limit 1: Time Exceeded from the VIP", in: hop1In, verdict: VerdictReply, drop: DropTTLExceeded,
			want: timeExceeded6(t, hop1In, fxVIP6NAT, fxClient6, fxClientMAC)},
		{name: "client packet with hop limit 1, ICMP rate limited", in: hop1In, icmpLimited: true, verdict: VerdictDrop,
			drop: DropTTLExceededLimited},
		{name: "reply with hop limit 1: Time Exceeded to the real server from the director", prep: estab(), in: hop1Reply,
			verdict: VerdictReply, drop: DropTTLExceeded, want: timeExceeded6(t, hop1Reply, fxDir6, fxRS6NAT, fxMAC(fxRS6NAT))},
		{name: "reply with hop limit 1 over the MTU: hop limit checked first", prep: estab(),
			in: fromRS6(n6Flags(ts.ACK), n6Hop(1), big).build(t), verdict: VerdictReply, drop: DropTTLExceeded,
			check: func(t testing.TB, out []byte) {
				if out[14+40] != 3 {
					t.Errorf("ICMPv6 type %d, want Time Exceeded", out[14+40])
				}
			}},
		{name: "client packet over the MTU: Packet Too Big from the VIP", in: bigIn, verdict: VerdictReply, drop: DropFragNeeded,
			check: func(t testing.TB, out []byte) {
				checkPTBFrom(t, out, bigInAfterHop, fxVIP6NAT, fxClient6, fxClientMAC, 1500)
			}},
		{name: "client packet over the MTU, ICMP rate limited", in: bigIn, icmpLimited: true, verdict: VerdictDrop, drop: DropICMPLimited},
		{name: "reply over the MTU: Packet Too Big to the real server from the director", prep: estab(), in: bigReply,
			verdict: VerdictReply, drop: DropFragNeeded,
			check: func(t testing.TB, out []byte) {
				checkPTBFrom(t, out, bigReply, fxDir6, fxRS6NAT, fxMAC(fxRS6NAT), 1500)
			}},
		{name: "ICMPv6 error from the real server: from the VIP, quoting the VIP", prep: estab(), in: rsErr(),
			verdict: VerdictForward, drop: noDrop,
			want: icmp6Err(t, fxDirMAC, fxClientMAC, fxVIP6NAT, fxClient6, 63, 1, 4, quoteAs(toRS6().build(t), false, fxVIP6NAT, 80))},
		{name: "ICMPv6 error to the VIP: to the real server, quoting it", prep: estab(), in: clientErr(),
			verdict: VerdictForward, drop: noDrop,
			want: icmp6Err(t, fxDirMAC, fxMAC(fxRS6NAT), fxClient6, fxRS6NAT, 63, 3, 0,
				quoteAs(toClient6(n6Flags(ts.SYN|ts.ACK)).build(t), true, fxRS6NAT, 8080))},
		{name: "ICMPv6 error with a bad checksum", prep: estab(), in: badSum, verdict: VerdictDrop, drop: noDrop, parse: header.BadChecksum},
		{name: "ICMPv6 error from the real server with hop limit 1", prep: estab(),
			in:      icmp6Err(t, fxMAC(fxRS6NAT), fxDirMAC, fxRS6NAT, fxClient6, 1, 1, 4, toRS6().build(t)[14:]),
			verdict: VerdictDrop, drop: DropTTLExceeded},
	}
}

// checkPTBFrom checks out is ICMPv6 Packet Too Big from src to dst (at
// MAC dstMAC), advertising mtu and quoting in's IPv6 packet, with a right
// checksum: built again by gopacket and compared byte for byte.
func checkPTBFrom(t testing.TB, out, in []byte, src, dst netip.Addr, dstMAC net.HardwareAddr, mtu uint32) {
	t.Helper()
	quote := in[14:]
	if len(quote) > 1280-48 {
		quote = quote[:1280-48]
	}
	body := binary.BigEndian.AppendUint32(nil, mtu)
	want := ts.Build(t, ts.Eth(fxDirMAC, dstMAC), &layers.IPv6{HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)}, ts.RawPayload(append(body, quote...)))
	if !bytes.Equal(out, want) {
		t.Errorf("Packet Too Big:\n got %x\nwant %x", out, want)
	}
}

// TestProcessNAT6Fixtures runs the IPv6 VS/NAT fixtures: the verdict,
// exactly the named drop counter moved by one, and the frame out the same
// bytes as gopacket builds the expected packet (so every incremental
// checksum update is checked against a checksum computed from scratch).
func TestProcessNAT6Fixtures(t *testing.T) {
	for _, fx := range nat6Fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			r := newNATRig6(t, 1024)
			if fx.icmpLimited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				a := fxClient6.As16()
				l.Allow6(&a)
				r.p.SetICMPLimiter(l)
			}
			if fx.prep != nil {
				fx.prep(t, r)
			}
			var before, after Totals
			before.Add(r.c)
			v, out, _ := r.run(fx.in, 256)
			if v != fx.verdict {
				t.Fatalf("verdict %d, want %d", v, fx.verdict)
			}
			after.Add(r.c)
			for d := range NumDrops {
				want := uint64(0)
				if Drop(d) == fx.drop {
					want = 1
				}
				if got := after.Drops[d] - before.Drops[d]; got != want {
					t.Errorf("drop %s moved by %d, want %d", Drop(d), got, want)
				}
			}
			for rs := range header.NumReasons {
				want := uint64(0)
				if fx.parse != header.OK && header.Reason(rs) == fx.parse {
					want = 1
				}
				if got := after.Parse[rs] - before.Parse[rs]; got != want {
					t.Errorf("parse reason %s moved by %d, want %d", header.Reason(rs), got, want)
				}
			}
			switch {
			case fx.want != nil:
				if !bytes.Equal(out, fx.want) {
					t.Errorf("frame out:\n got %x\nwant %x", out, fx.want)
				}
			case fx.check != nil:
				fx.check(t, out)
			}
		})
	}
}

// TestNAT6UDPChecksumZero: an IPv6 UDP datagram sent with a checksum of 0
// (which RFC 8200 forbids, but udp_dnat_handler passes as it is) keeps 0
// both ways; the rest of the packet is translated.
func TestNAT6UDPChecksumZero(t *testing.T) {
	r := newNATRig6(t, 64)
	zero := func(b []byte) []byte {
		b[14+40+6], b[14+40+7] = 0, 0
		return b
	}
	for i, c := range []struct{ in, want []byte }{
		{zero(toVIP6(n6UDP).build(t)), zero(toRS6(n6UDP).build(t))},
		{zero(fromRS6(n6UDP).build(t)), zero(toClient6(n6UDP).build(t))},
	} {
		v, out, _ := r.run(c.in, 256)
		if v != VerdictForward || !bytes.Equal(out, c.want) {
			t.Fatalf("step %d: verdict %d\n got %x\nwant %x", i, v, out, c.want)
		}
	}
}

// TestNAT6StateAndCounters: a whole TCP exchange through an IPv6 NAT
// service moves the connection by IPVS's INPUT and OUTPUT tables, as IPv4
// NAT does (the server's SYN-ACK keeps SYN_RECV, the client's ACK makes it
// ESTABLISHED, a client FIN is CLOSE_WAIT, the server's FIN TIME_WAIT),
// and the replies count as OutPkts/OutBytes, IP-layer bytes.
func TestNAT6StateAndCounters(t *testing.T) {
	r := newNATRig6(t, 1024)
	key := conntrack.Key{CAddr: fxClient6.As16(), VAddr: fxVIP6NAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	steps := []struct {
		in    []byte
		state conntrack.State
	}{
		{toVIP6().build(t), conntrack.SynRecv},
		{fromRS6(n6Flags(ts.SYN | ts.ACK)).build(t), conntrack.SynRecv},
		{toVIP6(n6Flags(ts.ACK)).build(t), conntrack.Established},
		{fromRS6(n6Flags(ts.ACK)).build(t), conntrack.Established},
		{toVIP6(n6Flags(ts.FIN | ts.ACK)).build(t), conntrack.CloseWait},
		{fromRS6(n6Flags(ts.FIN | ts.ACK)).build(t), conntrack.TimeWait},
	}
	var inBytes, outBytes uint64
	for i, s := range steps {
		if v, _, _ := r.run(s.in, 256); v != VerdictForward {
			t.Fatalf("step %d: verdict %d", i, v)
		}
		if i%2 == 1 {
			outBytes += uint64(len(s.in) - 14)
		} else {
			inBytes += uint64(len(s.in) - 14)
		}
		cn, ok := r.ct.Lookup(&key)
		if !ok || cn.State != s.state {
			t.Fatalf("step %d: state %v (found %v), want %v", i, cn.State, ok, s.state)
		}
	}
	svc, ok := r.snap.ServiceByKey(vs.Key{Proto: vs.TCP, Addr: fxVIP6NAT, Port: 80})
	if !ok {
		t.Fatal("NAT service not found")
	}
	r.p.Flush()
	st, dt := r.c.Service(svc.ID), r.c.Dest(svc.Dests[0].ID)
	if st.OutPkts != 3 || st.OutBytes != outBytes || dt.OutPkts != 3 || dt.OutBytes != outBytes ||
		st.InPkts != 3 || st.InBytes != inBytes || st.Conns != 1 {
		t.Fatalf("service %+v, dest %+v: want 3 in of %d bytes, 3 out of %d bytes, 1 conn", st, dt, inBytes, outBytes)
	}
}

// TestNAT6BatchedReplies: replies that go through LookupBatch and
// ProcessParsed (the worker's path) are translated as Process translates
// them, and LookupBatch leaves them out of the forward-key lookups.
func TestNAT6BatchedReplies(t *testing.T) {
	r := newNATRig6(t, 1024)
	var in, want [][]byte
	for i := range 8 {
		port := n6Sport(41000 + uint16(i))
		sendFirst(toVIP6(port).build(t))(t, r)
		in = append(in, fromRS6(n6Flags(ts.SYN|ts.ACK), port).build(t))
		want = append(want, toClient6(n6Flags(ts.SYN|ts.ACK), port).build(t))
	}
	fs := make([]Parsed, len(in))
	bufs := make([][]byte, len(in))
	for i, f := range in {
		bufs[i] = make([]byte, 2048)
		copy(bufs[i][256:], f)
		r.p.Parse(bufs[i][256:256+len(f)], &fs[i])
		if !r.snap.natReply(&fs[i].Pkt) {
			t.Fatalf("frame %d is not taken for a NAT reply", i)
		}
	}
	r.p.LookupBatch(r.snap, fs)
	for i, f := range in {
		if fs[i].looked {
			t.Errorf("frame %d: LookupBatch looked its forward key up", i)
		}
		v, o := r.p.ProcessParsed(r.snap, bufs[i], 256, len(f), &fs[i])
		if v != VerdictForward || !bytes.Equal(bufs[i][o.Off:o.Off+o.Len], want[i]) {
			t.Fatalf("frame %d: verdict %d\n got %x\nwant %x", i, v, bufs[i][o.Off:o.Off+o.Len], want[i])
		}
	}
}

// TestNAT6Allocs: the IPv6 NAT path allocates nothing per frame: a client
// packet, a reply, and an ICMPv6 error translated either way.
func TestNAT6Allocs(t *testing.T) {
	r := newNATRig6(t, 1<<16)
	sendFirst(toVIP6().build(t), fromRS6(n6Flags(ts.SYN|ts.ACK)).build(t))(t, r)
	b := make([]byte, maxFrame)
	for _, c := range []struct {
		name string
		f    []byte
	}{
		{"client packet", toVIP6(n6Flags(ts.ACK), n6Payload(64)).build(t)},
		{"reply", fromRS6(n6Flags(ts.ACK), n6Payload(64)).build(t)},
		{"ICMPv6 from the real server", icmp6Err(t, fxMAC(fxRS6NAT), fxDirMAC, fxRS6NAT, fxClient6, 64, 1, 4, toRS6().build(t)[14:])},
		{"ICMPv6 to the VIP", icmp6Err(t, fxClientMAC, fxDirMAC, fxClient6, fxVIP6NAT, 64, 3, 0, toClient6(n6Flags(ts.SYN | ts.ACK)).build(t)[14:])},
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			copy(b[256:], c.f)
			if v, _ := r.p.Process(r.snap, b, 256, len(c.f)); v != VerdictForward {
				t.Fatalf("%s: verdict %d", c.name, v)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocs per frame", c.name, allocs)
		}
	}
}

// BenchmarkNAT6Ratio times, in one run, an established IPv4 NAT client
// packet and reply and the same for IPv6, and reports each IPv6 one as a
// ratio to its IPv4 twin (best of the rounds, 1000 frames a round).
func BenchmarkNAT6Ratio(b *testing.B) {
	r := newNATRig6(b, 1<<16)
	for _, f := range [][]byte{seg(b, fxVIPNAT, 80), fromRS(b, 8080, ts.SYN|ts.ACK), toVIP6().build(b), fromRS6(n6Flags(ts.SYN | ts.ACK)).build(b)} {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			b.Fatal("setup frame dropped")
		}
	}
	frames := [4][]byte{seg(b, fxVIPNAT, 80, fxFlags(ts.ACK)), fromRS(b, 8080, ts.ACK),
		toVIP6(n6Flags(ts.ACK)).build(b), fromRS6(n6Flags(ts.ACK)).build(b)}
	best := [4]time.Duration{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
	buf := make([]byte, 2048)
	const round = 1000
	// b.N counts frames, so -benchtime Nx runs about N frames.
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += len(frames) * round {
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
	}
	ns := func(i int) float64 { return float64(best[i].Nanoseconds()) / round }
	b.ReportMetric(ns(0), "ns/nat4-client")
	b.ReportMetric(ns(1), "ns/nat4-reply")
	b.ReportMetric(ns(2)/ns(0), "nat6/nat4-client")
	b.ReportMetric(ns(3)/ns(1), "nat6/nat4-reply")
}
