package dataplane

import (
	"bytes"
	"encoding/binary"
	"math"
	"net"
	"net/netip"
	"slices"
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

// The IPv6 fixture configuration (fixtureTable6): fixtureTable's services
// and, on interface 0 (198.18.0.2 and 2001:2::2, MTU 1500):
//
//	2001:2:0:1::2 tcp/80, udp/53  DR  -> 2001:2::11
//	2001:2:0:1::3 tcp/80          TUN -> 2001:2::21   (IPv6 in IPv6)
//	2001:2:0:1::4 tcp/80          TUN -> 198.18.0.24  (IPv6 in IPv4)
//	198.19.0.7    tcp/80          TUN -> 2001:2::27   (IPv4 in IPv6)
//	2001:2:0:1::5 tcp/443         DR, persistent 300 s, -M 64 -> 2001:2::51, 2001:2::52
//	2001:2:0:1::6 tcp/80          DR  -> 2001:2::61, whose MAC is unresolved
var (
	fxDir6      = netip.MustParseAddr("2001:2::2")
	fxVIP6DR    = netip.MustParseAddr("2001:2:0:1::2")
	fxVIP6TUN   = netip.MustParseAddr("2001:2:0:1::3")
	fxVIP6TUN4  = netip.MustParseAddr("2001:2:0:1::4")
	fxVIP4TUN6  = netip.MustParseAddr("198.19.0.7")
	fxVIP6Pers  = netip.MustParseAddr("2001:2:0:1::5")
	fxVIP6Unres = netip.MustParseAddr("2001:2:0:1::6")
	fxRS6DR     = netip.MustParseAddr("2001:2::11")
	fxRS6TUN    = netip.MustParseAddr("2001:2::21")
	fxRS4TUN    = netip.MustParseAddr("198.18.0.24")
	fxRS6TUN4   = netip.MustParseAddr("2001:2::27")
	fxRS6Pers1  = netip.MustParseAddr("2001:2::51")
	fxRS6Pers2  = netip.MustParseAddr("2001:2::52")
	fxRS6Unres  = netip.MustParseAddr("2001:2::61")
)

func fixtureTable6(t testing.TB) *vs.Table {
	t.Helper()
	tbl := fixtureTable(t)
	add := func(s vs.Service) {
		t.Helper()
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	real := func(a netip.Addr, port uint16, fwd vs.Fwd) []vs.Real {
		return []vs.Real{{Addr: a, Port: port, Fwd: fwd, Weight: 1}}
	}
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6DR, Port: 80}, Sched: "rr", Reals: real(fxRS6DR, 80, vs.Route)})
	add(vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: fxVIP6DR, Port: 53}, Sched: "rr", Reals: real(fxRS6DR, 53, vs.Route)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6TUN, Port: 80}, Sched: "rr", Reals: real(fxRS6TUN, 80, vs.Tunnel)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6TUN4, Port: 80}, Sched: "rr", Reals: real(fxRS4TUN, 80, vs.Tunnel)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP4TUN6, Port: 80}, Sched: "rr", Reals: real(fxRS6TUN4, 80, vs.Tunnel)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6Pers, Port: 443}, Sched: "rr", Persistent: true, Timeout: 300,
		Netmask: vs.PrefixMask(64, true),
		Reals:   append(real(fxRS6Pers1, 443, vs.Route), real(fxRS6Pers2, 443, vs.Route)...)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6Unres, Port: 80}, Sched: "rr", Reals: real(fxRS6Unres, 80, vs.Route)})
	return tbl
}

// fxIfaces6 is the fixture interface with an IPv6 address too.
func fxIfaces6() []Iface {
	return []Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: [6]byte(fxDirMAC), MTU: 1500, Addr: fxDir.As4(),
		Addr6: fxDir6.As16(), HaveAddr6: true}}
}

// newFxRig6 is newFxRig on fixtureTable6.
func newFxRig6(t testing.TB, capacity, templates int) *fxRig {
	t.Helper()
	r := newFxRig(t, capacity, templates)
	snap, err := Build(fixtureTable6(t), BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap,
		Resolver: StaticResolver{MACs: map[netip.Addr][6]byte{fxRS6Unres: {}}}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
	return r
}

// fx6 is an IPv6 frame of the table: a TCP segment (or UDP datagram) from
// fxClient6, traffic class 0x28, flow label 0x12345, hop limit 64.
type fx6 struct {
	src     netip.Addr
	sport   uint16
	flags   ts.TCPFlags
	payload int
	udp     bool
}

type fx6Opt func(*fx6)

func f6From(a netip.Addr) fx6Opt    { return func(f *fx6) { f.src = a } }
func f6Flags(fl ts.TCPFlags) fx6Opt { return func(f *fx6) { f.flags = fl } }
func f6Payload(n int) fx6Opt        { return func(f *fx6) { f.payload = n } }
func f6UDP(f *fx6)                  { f.udp = true }
func f6Sport(p uint16) fx6Opt       { return func(f *fx6) { f.sport = p } }
func frame6(t testing.TB, dst netip.Addr, port uint16, opts ...fx6Opt) []byte {
	t.Helper()
	f := fx6{src: fxClient6, sport: 40000, flags: ts.SYN, payload: 10}
	for _, o := range opts {
		o(&f)
	}
	ip := &layers.IPv6{TrafficClass: 0x28, FlowLabel: 0x12345, HopLimit: 64, SrcIP: f.src.AsSlice(), DstIP: dst.AsSlice()}
	var l4 gopacket.SerializableLayer = ts.TCP(f.sport, port, f.flags)
	if f.udp {
		l4 = ts.UDP(f.sport, port)
	}
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ip, l4, ts.Payload(f.payload))
}

// outer describes the frame a forwarded packet leaves in: to rs's MAC from
// the director's, with the client's IP packet byte for byte inside an
// outer header of family outer (0: none, DR) from src to rs.
type outer struct {
	rs    netip.Addr
	outer int // 0, 4 or 6
	src   netip.Addr
}

// afterHop is the IP packet of the frame in as the director forwards it:
// its TTL or hop limit one less (decrement_ttl), and for IPv4 its header
// checksum computed afresh, independently of the incremental update.
func afterHop(in []byte) []byte {
	ip := append([]byte(nil), in[14:]...)
	if ip[0]>>4 == 6 {
		ip[7]--
		return ip
	}
	ip[8]--
	h := header.IPv4(ip[:int(ip[0]&0xf)*4])
	h.SetChecksum(0)
	h.SetChecksum(h.CalculateChecksum())
	return ip
}

// checkForwarded checks out against in as o describes, decoding out with
// gopacket: the client's packet leaves with its TTL or hop limit one less,
// and a tunnel's outer header copies the decremented value.
func checkForwarded(t testing.TB, out, in []byte, o outer) {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	if e := pkt.ErrorLayer(); e != nil && pkt.TransportLayer() == nil {
		t.Fatalf("frame out does not decode: %v\n%x", e.Error(), out)
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, fxDirMAC) || !bytes.Equal(eth.DstMAC, fxMAC(o.rs)) {
		t.Errorf("MACs %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, fxDirMAC, fxMAC(o.rs))
	}
	inner := afterHop(in)
	innerV6 := in[14]>>4 == 6
	var tc, hop uint8
	if innerV6 {
		tc, hop = uint8(binary.BigEndian.Uint16(inner[0:2])>>4), inner[7]
	} else {
		tc, hop = inner[1], inner[8]
	}
	next := layers.IPProtocolIPv4
	if innerV6 {
		next = layers.IPProtocolIPv6
	}
	at := 14
	switch o.outer {
	case 0:
		if want := in[12:14]; !bytes.Equal(out[12:14], want) {
			t.Errorf("ethertype %x, want %x", out[12:14], want)
		}
	case 6:
		ip, _ := pkt.Layers()[1].(*layers.IPv6)
		if ip == nil {
			t.Fatalf("no outer IPv6 header: %v", pkt)
		}
		at += 40
		if s, d := addr(ip.SrcIP), addr(ip.DstIP); s != o.src || d != o.rs {
			t.Errorf("outer IPv6 %s -> %s, want %s -> %s", s, d, o.src, o.rs)
		}
		if ip.NextHeader != next || ip.HopLimit != hop || ip.TrafficClass != tc || ip.FlowLabel != 0 || int(ip.Length) != len(inner) {
			t.Errorf("outer IPv6 next %v hop %d class %#x label %#x length %d, want %v %d %#x 0 %d",
				ip.NextHeader, ip.HopLimit, ip.TrafficClass, ip.FlowLabel, ip.Length, next, hop, tc, len(inner))
		}
	case 4:
		ip, _ := pkt.Layers()[1].(*layers.IPv4)
		if ip == nil {
			t.Fatalf("no outer IPv4 header: %v", pkt)
		}
		at += 20
		if s, d := addr(ip.SrcIP), addr(ip.DstIP); s != o.src || d != o.rs {
			t.Errorf("outer IPv4 %s -> %s, want %s -> %s", s, d, o.src, o.rs)
		}
		if ip.Protocol != next || ip.TTL != hop || ip.TOS != tc || ip.Flags&layers.IPv4DontFragment != 0 || int(ip.Length) != 20+len(inner) {
			t.Errorf("outer IPv4 protocol %v TTL %d TOS %#x flags %v length %d, want %v %d %#x no DF %d",
				ip.Protocol, ip.TTL, ip.TOS, ip.Flags, ip.Length, next, hop, tc, 20+len(inner))
		}
		if header.IPv4(out[14:34]).CalculateChecksum() != ip.Checksum {
			t.Errorf("outer IPv4 checksum %#04x is wrong", ip.Checksum)
		}
	}
	if !bytes.Equal(out[at:], inner) {
		t.Errorf("the client's packet changed:\n got %x\nwant %x", out[at:], inner)
	}
}

func addr(b net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap()
}

// checkPTB checks out is ICMPv6 Packet Too Big from vip to the client,
// advertising mtu and quoting in's IPv6 packet with its hop limit
// decremented (decrement_ttl runs before the MTU check), with a right
// checksum.
func checkPTB(t testing.TB, out, in []byte, vip netip.Addr, mtu uint32) {
	t.Helper()
	pkt := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	m, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if eth == nil || ip == nil || m == nil {
		t.Fatalf("not Ethernet/IPv6/ICMPv6: %v", pkt)
	}
	if !bytes.Equal(eth.SrcMAC, fxDirMAC) || !bytes.Equal(eth.DstMAC, fxClientMAC) {
		t.Errorf("MACs %s -> %s, want back to the client", eth.SrcMAC, eth.DstMAC)
	}
	if s, d := addr(ip.SrcIP), addr(ip.DstIP); s != vip || d != fxClient6 || ip.HopLimit != 64 {
		t.Errorf("IPv6 %s -> %s hop %d, want %s -> %s hop 64", s, d, ip.HopLimit, vip, fxClient6)
	}
	if m.TypeCode.Type() != layers.ICMPv6TypePacketTooBig || m.TypeCode.Code() != 0 {
		t.Errorf("ICMPv6 %v, want Packet Too Big", m.TypeCode)
	}
	body := m.LayerPayload()
	if got := binary.BigEndian.Uint32(body[:4]); got != mtu {
		t.Errorf("MTU %d, want %d", got, mtu)
	}
	quote := afterHop(in)
	if len(quote) > 1280-48 {
		quote = quote[:1280-48]
	}
	if !bytes.Equal(body[4:], quote) {
		t.Errorf("quote of %d bytes is not the packet's first %d", len(body)-4, len(quote))
	}
	msg := out[14+40:]
	var acc uint32
	for _, b := range [][]byte{ip.SrcIP, ip.DstIP, {0, 0, byte(len(msg) >> 8), byte(len(msg)), 0, 0, 0, 58}, msg} {
		for i := 0; i+1 < len(b); i += 2 {
			acc += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			acc += uint32(b[len(b)-1]) << 8
		}
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	if acc != 0xffff {
		t.Errorf("ICMPv6 checksum %#04x is wrong", m.Checksum)
	}
}

type fixture6 struct {
	name        string
	prep        func(testing.TB, *fxRig)
	in          []byte
	noHeadroom  bool
	icmpLimited bool
	verdict     Verdict
	drop        Drop // noDrop for none
	fwd         *outer
	ptb         uint32 // the MTU a Packet Too Big reply advertises
	vip         netip.Addr
	check       []c.Checker // an IPv4 reply (fragmentation-needed)
}

func fixtures6(t testing.TB) []fixture6 {
	big := func(n int) fx6Opt { return f6Payload(n - 40 - 20) } // a TCP packet of n bytes
	tun66 := &outer{rs: fxRS6TUN, outer: 6, src: fxDir6}
	return []fixture6{
		{name: "DR TCP SYN", in: frame6(t, fxVIP6DR, 80), verdict: VerdictForward, drop: noDrop, fwd: &outer{rs: fxRS6DR}},
		{name: "DR UDP", in: frame6(t, fxVIP6DR, 53, f6UDP), verdict: VerdictForward, drop: noDrop, fwd: &outer{rs: fxRS6DR}},
		{name: "DR established ACK", prep: sendFirst(frame6(t, fxVIP6DR, 80)), in: frame6(t, fxVIP6DR, 80, f6Flags(ts.ACK)),
			verdict: VerdictForward, drop: noDrop, fwd: &outer{rs: fxRS6DR}},
		{name: "DR through a destination options header", in: seg6(t, fxClient6, fxVIP6DR, 80, ext6{60, fxPad6}),
			verdict: VerdictForward, drop: noDrop, fwd: &outer{rs: fxRS6DR}},
		{name: "DR persistent", in: frame6(t, fxVIP6Pers, 443), verdict: VerdictForward, drop: noDrop, fwd: &outer{rs: fxRS6Pers2}},
		{name: "TUN IPv6 in IPv6", in: frame6(t, fxVIP6TUN, 80), verdict: VerdictForward, drop: noDrop, fwd: tun66},
		{name: "TUN IPv6 in IPv4", in: frame6(t, fxVIP6TUN4, 80), verdict: VerdictForward, drop: noDrop,
			fwd: &outer{rs: fxRS4TUN, outer: 4, src: fxDir}},
		{name: "TUN IPv4 in IPv6", in: seg(t, fxVIP4TUN6, 80), verdict: VerdictForward, drop: noDrop,
			fwd: &outer{rs: fxRS6TUN4, outer: 6, src: fxDir6}},
		{name: "TUN IPv6 in IPv6 at the MTU", in: frame6(t, fxVIP6TUN, 80, big(1460)), verdict: VerdictForward, drop: noDrop, fwd: tun66},

		// Too big: Packet Too Big, never a fragment.
		{name: "DR over MTU: Packet Too Big", in: frame6(t, fxVIP6DR, 80, big(1501)), verdict: VerdictReply, drop: DropFragNeeded,
			ptb: 1500, vip: fxVIP6DR},
		{name: "TUN IPv6 in IPv6 over MTU less 40: Packet Too Big", in: frame6(t, fxVIP6TUN, 80, big(1461)), verdict: VerdictReply,
			drop: DropFragNeeded, ptb: 1460, vip: fxVIP6TUN},
		{name: "TUN IPv6 in IPv4 over MTU less 20: Packet Too Big", in: frame6(t, fxVIP6TUN4, 80, big(1481)), verdict: VerdictReply,
			drop: DropFragNeeded, ptb: 1480, vip: fxVIP6TUN4},
		{name: "Packet Too Big rate-limited", in: frame6(t, fxVIP6DR, 80, big(1501)), icmpLimited: true, verdict: VerdictDrop,
			drop: DropICMPLimited},
		{name: "TUN IPv4 in IPv6, DF, over MTU less 40: frag needed", in: seg(t, fxVIP4TUN6, 80, fxPayload(1461-40)),
			verdict: VerdictReply, drop: DropFragNeeded, check: fragNeeded(fxVIP4TUN6, 1460, 80)},
		{name: "TUN IPv4 in IPv6, no DF, too big for two fragments: too big", in: seg(t, fxVIP4TUN6, 80, fxPayload(3000-40), noDF),
			verdict: VerdictDrop, drop: DropTooBig},
		{name: "TUN IPv6 in IPv6 without headroom", in: frame6(t, fxVIP6TUN, 80), noHeadroom: true, verdict: VerdictDrop, drop: DropNoHeadroom},
		{name: "TUN IPv6 in IPv4 without headroom", in: frame6(t, fxVIP6TUN4, 80), noHeadroom: true, verdict: VerdictDrop, drop: DropNoHeadroom},

		// Drops, as for IPv4.
		{name: "no service: unknown port", in: frame6(t, fxVIP6DR, 81), verdict: VerdictDrop, drop: DropNoService},
		{name: "no service: the IPv4 VIP's twin", in: frame6(t, netip.MustParseAddr("2001:2:0:1::7"), 80), verdict: VerdictDrop, drop: DropNoService},
		{name: "TCP ACK without a connection", in: frame6(t, fxVIP6DR, 80, f6Flags(ts.ACK)), verdict: VerdictDrop, drop: DropNoConnection},
		{name: "neighbour unresolved", in: frame6(t, fxVIP6Unres, 80), verdict: VerdictDrop, drop: DropNeighborUnresolved},
	}
}

// TestProcessFixtures6 runs the IPv6 fixtures as TestProcessFixtures runs
// its table: the verdict, exactly the named drop counter moved by one, and
// the frame out (or the reply) decoded with gopacket.
func TestProcessFixtures6(t *testing.T) {
	for _, fx := range fixtures6(t) {
		t.Run(fx.name, func(t *testing.T) {
			r := newFxRig6(t, 1024, 64)
			if fx.icmpLimited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				a := fxClient6.As16()
				l.Allow6(&a) // spend the one token
				r.p.SetICMPLimiter(l)
			}
			if fx.prep != nil {
				fx.prep(t, r)
			}
			var before, after Totals
			before.Add(r.c)
			headroom := 256
			if fx.noHeadroom {
				headroom = -1
			}
			v, out, _ := r.run(fx.in, headroom)
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
				if got := after.Parse[rs] - before.Parse[rs]; got != 0 {
					t.Errorf("parse reason %s moved by %d", header.Reason(rs), got)
				}
			}
			switch {
			case fx.fwd != nil:
				checkForwarded(t, out, fx.in, *fx.fwd)
			case fx.ptb != 0:
				checkPTB(t, out, fx.in, fx.vip, fx.ptb)
				if got := after.ICMPSent - before.ICMPSent; got != 1 {
					t.Errorf("icmp sent moved by %d, want 1", got)
				}
			case fx.check != nil:
				c.Frame(t, out, fx.check...)
			}
		})
	}
}

// TestProcess6Persistence: an IPv6 service with -M 64 keeps every client of
// a /64 on the server its first client got (one template per prefix), and
// a client of another /64 is scheduled afresh; the connections and the
// service count in the same table and counters as IPv4's.
func TestProcess6Persistence(t *testing.T) {
	r := newFxRig6(t, 1024, 64)
	a := netip.MustParseAddr
	send := func(src netip.Addr) (netip.Addr, Decision) {
		t.Helper()
		v, out, _ := r.run(frame6(t, fxVIP6Pers, 443, f6From(src)), 256)
		if v != VerdictForward {
			t.Fatalf("%s: verdict %d", src, v)
		}
		for _, rs := range []netip.Addr{fxRS6Pers1, fxRS6Pers2} {
			if bytes.Equal(out[:6], fxMAC(rs)) {
				return rs, r.p.Last
			}
		}
		t.Fatalf("%s: sent to %x, no real server's MAC", src, out[:6])
		return netip.Addr{}, Decision{}
	}
	first, d := send(a("2001:2:0:9::10"))
	if !d.New || d.Template {
		t.Fatalf("first client: %+v, want a new connection without a template", d)
	}
	for _, src := range []string{"2001:2:0:9::11", "2001:2:0:9:ffff:ffff:ffff:ffff"} {
		if rs, d := send(a(src)); rs != first || !d.Template {
			t.Fatalf("%s, same /64: went to %s (template %v), want %s by the template", src, rs, d.Template, first)
		}
	}
	if rs, d := send(a("2001:2:0:a::10")); rs == first || d.Template {
		t.Fatalf("another /64: went to %s (template %v), want the other server by rr", rs, d.Template)
	}
	if n := r.ct.Stats().Entries; n != 4 {
		t.Fatalf("connection table holds %d entries, want 4", n)
	}
	svc, ok := r.snap.ServiceByKey(vs.Key{Proto: vs.TCP, Addr: fxVIP6Pers, Port: 443})
	if !ok {
		t.Fatal("no service")
	}
	r.p.Flush()
	if got := r.c.Service(svc.ID).Conns; got != 4 {
		t.Fatalf("service conns %d, want 4", got)
	}
}

// TestProcess6FamiliesApart: an IPv6 VIP and an IPv4 VIP whose
// address is the IPv6 one's last four bytes are two services; neither
// family's frames reach the other's.
func TestProcess6FamiliesApart(t *testing.T) {
	tbl := &vs.Table{}
	v4 := netip.MustParseAddr("198.19.0.1")
	v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 12: 198, 13: 19, 14: 0, 15: 1})
	for _, s := range []vs.Service{
		{Key: vs.Key{Proto: vs.TCP, Addr: v4, Port: 80}, Sched: "rr", Reals: []vs.Real{{Addr: fxRSDR, Port: 80, Weight: 1}}},
		{Key: vs.Key{Proto: vs.TCP, Addr: v6, Port: 80}, Sched: "rr", Reals: []vs.Real{{Addr: fxRS6DR, Port: 80, Weight: 1}}},
	} {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	r := newFxRig(t, 64, 8)
	snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: r.loads, Resolver: StaticResolver{}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
	for _, tc := range []struct {
		in []byte
		rs netip.Addr
	}{{seg(t, v4, 80), fxRSDR}, {frame6(t, v6, 80), fxRS6DR}} {
		v, out, _ := r.run(tc.in, 256)
		if v != VerdictForward || !bytes.Equal(out[:6], fxMAC(tc.rs)) {
			t.Fatalf("verdict %d, to %x, want %s", v, out[:6], tc.rs)
		}
	}
}

// TestProcess6Allocs: the IPv6 path allocates nothing per frame, for an
// established flow (DR, IPv6 in IPv6, IPv6 in IPv4), a new one, and a
// Packet Too Big reply.
func TestProcess6Allocs(t *testing.T) {
	r := newFxRig6(t, 1<<16, 64)
	b := make([]byte, maxFrame)
	for _, vipPort := range []netip.Addr{fxVIP6DR, fxVIP6TUN, fxVIP6TUN4} {
		syn := frame6(t, vipPort, 80, f6Sport(7000))
		if v, _, _ := r.run(syn, 256); v != VerdictForward {
			t.Fatalf("%s: SYN verdict %d", vipPort, v)
		}
		ack := frame6(t, vipPort, 80, f6Sport(7000), f6Flags(ts.ACK), f6Payload(64))
		allocs := testing.AllocsPerRun(1000, func() {
			copy(b[256:], ack)
			if v, _ := r.p.Process(r.snap, b, 256, len(ack)); v != VerdictForward {
				t.Fatalf("verdict %d", v)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s established: %v allocs per frame", vipPort, allocs)
		}
	}
	syn := frame6(t, fxVIP6DR, 80)
	port := uint16(0)
	allocs := testing.AllocsPerRun(1000, func() {
		port++
		copy(b[256:], syn)
		b[256+54], b[256+55] = byte(port>>8), byte(port) // the TCP source port; L4 checksums are not checked
		if v, _ := r.p.Process(r.snap, b, 256, len(syn)); v != VerdictForward {
			t.Fatalf("verdict %d", v)
		}
	})
	if allocs != 0 {
		t.Fatalf("new flow: %v allocs per frame", allocs)
	}
	big := frame6(t, fxVIP6DR, 80, f6Payload(1500))
	allocs = testing.AllocsPerRun(1000, func() {
		copy(b[256:], big)
		if v, _ := r.p.Process(r.snap, b, 256, len(big)); v != VerdictReply {
			t.Fatalf("verdict %d", v)
		}
	})
	if allocs != 0 {
		t.Fatalf("Packet Too Big: %v allocs per frame", allocs)
	}
}

// TestCompile6 covers what Compile does for IPv6: the IPv6 steering keys,
// an IPv6 firewall-mark service fed by its mark's IPv6 matches only (the
// IPv4 ones feed the mark's IPv4 service), a tunnel dest unreachable when
// its egress interface has no address of the outer family, and VS/NAT over
// IPv6 refused by name.
func TestCompile6(t *testing.T) {
	a := netip.MustParseAddr
	tbl := &vs.Table{Marks: []vs.Mark{{Mark: 3, Matches: []vs.Match{
		{Proto: vs.TCP, Addr: a("198.19.0.3"), PortLo: 80, PortHi: 80},
		{Proto: vs.TCP, Addr: a("2001:2::3"), PortLo: 80, PortHi: 81},
	}}}}
	for _, s := range []vs.Service{
		{Key: vs.Key{FWMark: 3}, Sched: "rr", Reals: []vs.Real{{Addr: a("198.18.0.11"), Weight: 1}}},
		{Key: vs.Key{FWMark: 3, IPv6: true}, Sched: "rr", Reals: []vs.Real{{Addr: a("2001:2::11"), Weight: 1}}},
		{Key: vs.Key{Proto: vs.UDP, Addr: a("2001:2::4"), Port: 53}, Sched: "sh", Reals: []vs.Real{{Addr: a("2001:2::21"), Port: 53, Fwd: vs.Tunnel, Weight: 1}}},
	} {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	build := func(ifs []Iface) *Snapshot {
		t.Helper()
		snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: sched.NewLoads(MaxDests), Resolver: StaticResolver{}, Ifaces: ifs})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	snap := build(fxIfaces6())
	var got []string
	for _, k := range snap.SteeringKeys() {
		got = append(got, netip.AddrPortFrom(k.Addr, k.Port).String()+"/"+vs.Proto(k.Proto).String())
	}
	want := []string{"198.19.0.3:80/tcp", "[2001:2::3]:80/tcp", "[2001:2::3]:81/tcp", "[2001:2::4]:53/udp"}
	if len(got) != len(want) {
		t.Fatalf("steering keys %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("steering keys %v, want %v", got, want)
		}
	}
	for _, k := range []struct {
		addr netip.Addr
		fam6 bool
	}{{a("198.19.0.3"), false}, {a("2001:2::3"), true}} {
		si, ok := snap.indexGet(k.addr, 6, 80)
		if !ok || snap.Services[si].Key.IPv6 != k.fam6 {
			t.Fatalf("%s: service %d (found %v), want FWM 3 of IPv6 %v", k.addr, si, ok, k.fam6)
		}
	}
	svc, _ := snap.ServiceByKey(vs.Key{Proto: vs.UDP, Addr: a("2001:2::4"), Port: 53})
	if d := svc.Dests[0]; d.Slot != 0 || d.Unreachable != "" || !d.Is6 || d.IP() != a("2001:2::21") {
		t.Fatalf("IPv6 tunnel dest %+v", d)
	}
	no6 := fxIfaces6()
	no6[0].HaveAddr6, no6[0].Addr6 = false, [16]byte{}
	svc, _ = build(no6).ServiceByKey(vs.Key{Proto: vs.UDP, Addr: a("2001:2::4"), Port: 53})
	if d := svc.Dests[0]; d.Slot != -1 || d.Unreachable != "interface eth0 has no IPv6 address to send the tunnel to 2001:2::21 from" {
		t.Fatalf("tunnel dest without an IPv6 source: slot %d, unreachable %q", d.Slot, d.Unreachable)
	}

	nat := tbl.Clone()
	nat.Services[2].Reals = []vs.Real{{Addr: a("2001:2::21"), Port: 5353, Fwd: vs.Masq, Weight: 1}}
	ns, err := Build(nat, BuildOptions{Registry: NewRegistry(), Loads: sched.NewLoads(MaxDests), Resolver: StaticResolver{}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatalf("NAT over IPv6: %v", err)
	}
	if !ns.HasNAT() || !slices.Contains(ns.SteeringKeys(), SteerKey{Addr: a("2001:2::21"), Proto: 17, Port: 5353, Source: true}) {
		t.Fatalf("NAT over IPv6: steering keys %v, want the IPv6 real server's source key", ns.SteeringKeys())
	}
}

// TestICMPLimiterAllow6: IPv6 destinations have per-host budgets of their
// own, and an IPv4-mapped one shares its IPv4 address's.
func TestICMPLimiterAllow6(t *testing.T) {
	l, err := NewICMPLimiter(1000, 1000, &conntrack.ManualClock{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.LimitPerHost(time.Second, 1); err != nil {
		t.Fatal(err)
	}
	x, y := fxClient6.As16(), netip.MustParseAddr("2001:2::99").As16()
	if !l.Allow6(&x) || l.Allow6(&x) {
		t.Fatal("a host's one token: want allowed once")
	}
	if !l.Allow6(&y) {
		t.Fatal("another IPv6 host was refused")
	}
	m := netip.AddrFrom4([4]byte{198, 18, 0, 10}).As16() // ::ffff:198.18.0.10
	if !l.Allow6(&m) || l.Allow([4]byte{198, 18, 0, 10}) {
		t.Fatal("a mapped address and its IPv4 address: want one shared budget")
	}
}

// oneService6 is oneService for an IPv6 VIP, 2001:2:0:1::1 tcp/80, with
// real servers 2001:2::11, ::12, ...
func oneService6(fwd vs.Fwd, schedName string, weights ...int32) *vs.Table {
	s := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6, Port: 80}, Sched: schedName}
	for i, w := range weights {
		s.Reals = append(s.Reals, vs.Real{Addr: netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: byte(0x11 + i)}), Port: 80, Fwd: fwd, Weight: w})
	}
	t := &vs.Table{}
	if err := t.AddService(s); err != nil {
		panic(err)
	}
	return t
}

// BenchmarkProcess6 is BenchmarkProcess for IPv6: the same cases, frames
// and real servers, with IPv6 addresses (TUN is IPv6 in IPv6). Run both in
// one invocation to compare: go test -bench 'Process6?$'.
func BenchmarkProcess6(b *testing.B) {
	ifaces := []Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: dirMAC, MTU: 1500, Addr: dirAddr, Addr6: fxDir6.As16(), HaveAddr6: true}}
	rig6 := func(b *testing.B, tbl *vs.Table, capacity int) *rig {
		r := newRig(b, &vs.Table{}, capacity)
		snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: r.loads, Resolver: StaticResolver{}, Ifaces: ifaces})
		if err != nil {
			b.Fatal(err)
		}
		r.snap = snap
		return r
	}
	for _, fwd := range []vs.Fwd{vs.Route, vs.Tunnel} {
		b.Run("fwd="+fwd.String()+"/flow=established", func(b *testing.B) {
			r := rig6(b, oneService6(fwd, "wlc", 1, 2, 3), 1<<16)
			syn := frame6(b, fxVIP6, 80, f6Sport(7000))
			r.p.Process(r.snap, chunk(syn), headroom, len(syn))
			ack := frame6(b, fxVIP6, 80, f6Sport(7000), f6Flags(ts.ACK), f6Payload(18))
			buf := make([]byte, 2048)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[headroom:], ack)
				r.p.Process(r.snap, buf, headroom, len(ack))
			}
		})
	}
	b.Run("fwd=Route/flow=new", func(b *testing.B) {
		r := rig6(b, oneService6(vs.Route, "wlc", 1, 2, 3), 1<<20)
		syn := frame6(b, fxVIP6, 80, f6Payload(0))
		buf := make([]byte, 2048)
		var n uint32
		b.ReportAllocs()
		for b.Loop() {
			n++
			copy(buf[headroom:], syn)
			buf[headroom+34], buf[headroom+35] = byte(n>>16), byte(n>>8) // vary the client address
			buf[headroom+54], buf[headroom+55] = byte(n>>8), byte(n)
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

// BenchmarkProcess6Ratio measures established-flow frames of both families
// on one processor and table, DR and TUN (IPIP; IPv6 in IPv6), in
// interleaved rounds of 1000 frames, keeping each one's fastest round so
// that a loaded machine's noise hits them alike; it reports ns per frame
// of each and the IPv6/IPv4 ratios. b.N counts frames, so that a fixed
// -benchtime Nx runs N frames (a pass of the four rounds at a time) and
// ns/op is per frame, as in the other Process benchmarks.
func BenchmarkProcess6Ratio(b *testing.B) {
	r := newFxRig6(b, 1<<16, 64)
	syns := [][]byte{seg(b, fxVIPDR, 80), frame6(b, fxVIP6DR, 80), seg(b, fxVIPTUN, 80), frame6(b, fxVIP6TUN, 80)}
	for _, f := range syns {
		if v, _, _ := r.run(f, 256); v != VerdictForward {
			b.Fatal("setup frame dropped")
		}
	}
	frames := [4][]byte{seg(b, fxVIPDR, 80, fxFlags(ts.ACK)), frame6(b, fxVIP6DR, 80, f6Flags(ts.ACK)),
		seg(b, fxVIPTUN, 80, fxFlags(ts.ACK)), frame6(b, fxVIP6TUN, 80, f6Flags(ts.ACK))}
	best := [4]time.Duration{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64}
	buf := make([]byte, 2048)
	const round = 1000
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
	ns := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / round }
	b.ReportMetric(ns(best[0]), "DR4-ns/frame")
	b.ReportMetric(ns(best[1]), "DR6-ns/frame")
	b.ReportMetric(ns(best[2]), "TUN4-ns/frame")
	b.ReportMetric(ns(best[3]), "TUN6-ns/frame")
	b.ReportMetric(ns(best[1])/ns(best[0]), "DR6/DR4")
	b.ReportMetric(ns(best[3])/ns(best[2]), "TUN6/TUN4")
}

// TestIP6IP4Identification: consecutive IPv6-in-IPv4 packets, whose outer
// header has DF clear, carry different identifications.
func TestIP6IP4Identification(t *testing.T) {
	r := newFxRig6(t, 1024, 64)
	seen := map[uint16]bool{}
	for i := range 64 {
		v, out, _ := r.run(frame6(t, fxVIP6TUN4, 80, f6Sport(uint16(30000+i))), 256)
		if v != VerdictForward {
			t.Fatalf("verdict %d", v)
		}
		id := binary.BigEndian.Uint16(out[14+4:])
		if seen[id] {
			t.Fatalf("packet %d repeats identification %d", i, id)
		}
		seen[id] = true
	}
}

// TestCompile6LocalNode: a real server of an IPv6 service that is the
// director's own address is the local node, as an IPv4 service's is: it
// compiles local with no reason, and the processor answers VerdictLocal
// with the frame's IPv6 packet unchanged (extension headers included),
// for the connection's first packet and its later ones, and Flow names
// the IPv6 connection.
func TestCompile6LocalNode(t *testing.T) {
	a := netip.MustParseAddr
	tbl := &vs.Table{}
	for _, s := range []vs.Service{
		{Key: vs.Key{Proto: vs.TCP, Addr: fxVIP6DR, Port: 80}, Sched: "rr", Reals: []vs.Real{{Addr: fxDir6, Port: 80, Weight: 1}}},
		{Key: vs.Key{Proto: vs.TCP, Addr: a("198.19.0.1"), Port: 80}, Sched: "rr", Reals: []vs.Real{{Addr: fxDir, Port: 80, Weight: 1}}},
	} {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	r := newFxRig(t, 64, 8)
	snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: r.loads,
		Resolver: localResolver{local: map[netip.Addr]bool{fxDir6: true, fxDir: true}}, Ifaces: fxIfaces6()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snap.Services {
		if d := s.Dests[0]; !d.Local || d.Unreachable != "" {
			t.Errorf("%s: local real server %s: local %v, unreachable %q", s.Key, d.IP(), d.Local, d.Unreachable)
		}
	}
	r.snap = snap
	for i, in := range [][]byte{frame6(t, fxVIP6DR, 80), seg6(t, fxClient6, fxVIP6DR, 80, ext6{60, fxPad6})} {
		if i == 1 {
			in[14+40+8+13] = byte(ts.ACK) // the same connection's next segment
		}
		buf := make([]byte, maxFrame)
		copy(buf[256:], in)
		v, out := r.p.Process(r.snap, buf, 256, len(in))
		if v != VerdictLocal || !bytes.Equal(buf[out.Off:out.Off+out.Len], in[14:]) {
			t.Fatalf("frame %d: verdict %d, out %x; want VerdictLocal with the IPv6 packet %x", i, v, buf[out.Off:out.Off+out.Len], in[14:])
		}
		if src, dst, sp, dp, proto := r.p.Flow(); src != fxClient6 || dst != fxVIP6DR || sp != 40000 || dp != 80 || proto != 6 {
			t.Fatalf("frame %d: Flow() = %v %v %d %d %d", i, src, dst, sp, dp, proto)
		}
		if r.p.Last.New != (i == 0) {
			t.Fatalf("frame %d: decision %+v", i, r.p.Last)
		}
	}
}
