package dataplane

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// The processor's fixture table, in the manner of Katran's test fixtures:
// one configuration, and for each case one frame in, the verdict, the one
// counter it moves, and the frame out checked field by field. Read down the
// table to see every forwarding method, drop reason, parse error and ICMP
// answer of the processor.
//
// The configuration (fixtureTable): on interface 0 (MAC fxDirMAC, address
// 198.18.0.2, MTU 1500)
//
//	198.19.0.1 tcp/80, udp/53   DR  -> 198.18.0.11
//	198.19.0.2 tcp/80, udp/53   TUN -> 198.18.0.21
//	198.19.0.3 tcp/80           no real server with weight
//	198.19.0.4 tcp/443          DR, persistent 300 s -> 198.18.0.41
//	198.19.0.5 tcp/80           DR -> 198.18.0.51, whose MAC is unresolved
//	198.19.0.6 tcp/80, udp/53   NAT -> 198.18.2.61:8080, :5353 (nat_test.go)
var (
	fxDirMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	fxClientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	fxDir       = netip.MustParseAddr("198.18.0.2")
	fxClient    = netip.MustParseAddr("198.18.0.10")
	fxVIPDR     = netip.MustParseAddr("198.19.0.1")
	fxVIPTUN    = netip.MustParseAddr("198.19.0.2")
	fxVIPEmpty  = netip.MustParseAddr("198.19.0.3")
	fxVIPPers   = netip.MustParseAddr("198.19.0.4")
	fxVIPUnres  = netip.MustParseAddr("198.19.0.5")
	fxRSDR      = netip.MustParseAddr("198.18.0.11")
	fxRSTUN     = netip.MustParseAddr("198.18.0.21")
	fxRSPers    = netip.MustParseAddr("198.18.0.41")
	fxRSUnres   = netip.MustParseAddr("198.18.0.51")
)

func fxMAC(a netip.Addr) net.HardwareAddr { m := SyntheticMAC(a); return m[:] }

func fixtureTable(t testing.TB) *vs.Table {
	t.Helper()
	tbl := &vs.Table{}
	add := func(s vs.Service) {
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
	}
	real := func(a netip.Addr, port uint16, fwd vs.Fwd, w int32) []vs.Real {
		return []vs.Real{{Addr: a, Port: port, Fwd: fwd, Weight: w}}
	}
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPDR, Port: 80}, Sched: "rr", Reals: real(fxRSDR, 80, vs.Route, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: fxVIPDR, Port: 53}, Sched: "rr", Reals: real(fxRSDR, 53, vs.Route, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPTUN, Port: 80}, Sched: "rr", Reals: real(fxRSTUN, 80, vs.Tunnel, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: fxVIPTUN, Port: 53}, Sched: "rr", Reals: real(fxRSTUN, 53, vs.Tunnel, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPEmpty, Port: 80}, Sched: "wrr", Reals: real(fxRSDR, 80, vs.Route, 0)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPPers, Port: 443}, Sched: "rr", Persistent: true, Timeout: 300,
		Reals: real(fxRSPers, 443, vs.Route, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPUnres, Port: 80}, Sched: "rr", Reals: real(fxRSUnres, 80, vs.Route, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: fxVIPNAT, Port: 80}, Sched: "rr", Reals: real(fxRSNAT, 8080, vs.Masq, 1)})
	add(vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: fxVIPNAT, Port: 53}, Sched: "rr", Reals: real(fxRSNAT, 5353, vs.Masq, 1)})
	return tbl
}

// fxRig is a processor on the fixture configuration.
type fxRig struct {
	clock *conntrack.ManualClock
	ct    *conntrack.Table
	loads *sched.Loads
	c     *Counters
	p     *Processor
	snap  *Snapshot
	reg   *Registry
}

func newFxRig(t testing.TB, capacity, templates int) *fxRig {
	t.Helper()
	r := &fxRig{loads: sched.NewLoads(MaxDests), c: new(Counters), reg: NewRegistry(), clock: &conntrack.ManualClock{}}
	var err error
	r.ct, err = conntrack.New(conntrack.Config{Capacity: capacity, Templates: templates, Reverse: capacity, Timeouts: conntrack.DefaultTimeouts(),
		Clock: r.clock, Hooks: r.loads})
	if err != nil {
		t.Fatal(err)
	}
	r.apply(t, fixtureTable(t))
	r.p = NewProcessor(r.ct, r.c, 0)
	return r
}

// apply builds tbl into the snapshot in force, as a reload does.
func (r *fxRig) apply(t testing.TB, tbl *vs.Table) {
	t.Helper()
	d4 := fxDir.As4()
	snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap,
		Resolver: StaticResolver{MACs: map[netip.Addr][6]byte{fxRSUnres: {}}},
		Ifaces:   []Iface{{Slot: 0, Index: 1, Name: "eth0", MAC: [6]byte(fxDirMAC), MTU: 1500, Addr: d4}}})
	if err != nil {
		t.Fatal(err)
	}
	r.snap = snap
}

// run processes frame after headroom bytes and returns the verdict, the
// frame out (or the reply) and the second fragment, if any. Headroom -1
// puts the frame in a buffer of exactly its size.
func (r *fxRig) run(frame []byte, headroom int) (Verdict, []byte, []byte) {
	buf := make([]byte, maxFrame)
	if headroom < 0 {
		headroom, buf = 0, make([]byte, len(frame))
	}
	copy(buf[headroom:], frame)
	v, out := r.p.Process(r.snap, buf, headroom, len(frame))
	switch {
	case v == VerdictReply:
		return v, r.p.Reply(), nil
	case v == VerdictForward && out.Second:
		return v, buf[out.Off : out.Off+out.Len], r.p.Second()
	case v == VerdictForward:
		return v, buf[out.Off : out.Off+out.Len], nil
	}
	return v, nil, nil
}

// Frames of the table. seg is a TCP segment from the client; dgram a UDP
// datagram; each option changes one thing.
type fxOpt func(*fxFrame)

type fxFrame struct {
	sport   uint16
	client  netip.Addr
	payload int
	df      bool
	flags   ts.TCPFlags
}

func noDF(f *fxFrame)              { f.df = false }
func fxPayload(n int) fxOpt        { return func(f *fxFrame) { f.payload = n } }
func fxFlags(fl ts.TCPFlags) fxOpt { return func(f *fxFrame) { f.flags = fl } }
func fxSport(p uint16) fxOpt       { return func(f *fxFrame) { f.sport = p } }
func fxFrom(a netip.Addr) fxOpt    { return func(f *fxFrame) { f.client = a } }

func ipHeader(dst netip.Addr, df bool) *layers.IPv4 { return ipHeaderFrom(fxClient, dst, df) }

func ipHeaderFrom(src, dst netip.Addr, df bool) *layers.IPv4 {
	ip := ts.IPv4(src, dst)
	ip.TOS, ip.Id = 0x10, 4242
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	return ip
}

func seg(t testing.TB, dst netip.Addr, port uint16, opts ...fxOpt) []byte {
	t.Helper()
	f := fxFrame{sport: 40000, client: fxClient, df: true, flags: ts.SYN, payload: 10}
	for _, o := range opts {
		o(&f)
	}
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeaderFrom(f.client, dst, f.df), ts.TCP(f.sport, port, f.flags), ts.Payload(f.payload))
}

func dgram(t testing.TB, dst netip.Addr, port uint16, opts ...fxOpt) []byte {
	t.Helper()
	f := fxFrame{sport: 40000, client: fxClient, df: true, payload: 10}
	for _, o := range opts {
		o(&f)
	}
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeaderFrom(f.client, dst, f.df), ts.UDP(f.sport, port), ts.Payload(f.payload))
}

// corrupt returns f with byte at changed by fn (offsets from the frame's
// start; the IPv4 header begins at 14).
func corrupt(f []byte, at int, fn func(byte) byte) []byte {
	f = append([]byte(nil), f...)
	f[at] = fn(f[at])
	return f
}

func set(v byte) func(byte) byte { return func(byte) byte { return v } }

// withIPChecksum recomputes the IPv4 header checksum after a corruption
// that should reach a later check.
func withIPChecksum(f []byte) []byte {
	ihl := int(f[14]&0xf) * 4
	f[24], f[25] = 0, 0
	var acc uint32
	for i := 14; i < 14+ihl; i += 2 {
		acc += uint32(f[i])<<8 | uint32(f[i+1])
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	s := ^uint16(acc)
	f[24], f[25] = byte(s>>8), byte(s)
	return f
}

// Checks the DR and TUN outputs share: the client's packet, unchanged but
// for its TTL, one less than the client's 64 (decrement_ttl; the checker
// verifies the header checksum the decrement updated).
func fromClient(dst netip.Addr, dport uint16, proto func(...c.Checker) c.Checker) []c.Checker {
	return []c.Checker{c.SrcAddr(fxClient), c.DstAddr(dst), c.TTL(63), c.TOS(0x10), c.ID(4242),
		proto(c.SrcPort(40000), c.DstPort(dport), c.Payload(ts.Payload(10)))}
}

func dr(rs netip.Addr, inner ...c.Checker) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(rs)), c.IPv4(append(inner, c.NotTunnelled())...)}
}

// tun is a VS/TUN frame to rs: the outer header copies the inner's TOS,
// DF and TTL (the client's 64 less the director's hop), with the
// director's address.
func tun(rs netip.Addr, df bool, inner ...c.Checker) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(rs)),
		c.IPv4(c.SrcAddr(fxDir), c.DstAddr(rs), c.TTL(63), c.TOS(0x10), c.DontFragment(df), c.Protocol(layers.IPProtocolIPv4),
			c.IPIP(inner...))}
}

// fragNeeded is the ICMP answer to a DF packet from the client too big for
// mtu: from the VIP to the client, out of the ingress interface.
func fragNeeded(vip netip.Addr, mtu uint16, dport uint16) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC),
		c.IPv4(c.SrcAddr(vip), c.DstAddr(fxClient), c.ICMPv4(c.ICMPType(3, 4), c.ICMPMTU(mtu),
			c.Embedded(c.SrcAddr(fxClient), c.DstAddr(vip), c.SrcPort(40000), c.DstPort(dport))))}
}

type fixture struct {
	name string
	// prep sets up state before the frame: earlier packets, a reload.
	prep func(t testing.TB, r *fxRig)
	in   []byte
	// noHeadroom runs the frame in a buffer of its own size, with no room
	// before or after it.
	noHeadroom bool
	// icmpLimited runs with an ICMP limiter whose one token is spent;
	// icmpFwdLimited, the same for forwarded ICMP errors.
	icmpLimited, icmpFwdLimited bool
	capacity                    int // connection table capacity; 0: 1024
	templates                   int // persistence template capacity; 0: 64

	verdict Verdict
	drop    Drop          // the drop counter moved, for VerdictDrop and VerdictReply (DropFragNeeded)
	parse   header.Reason // the parse counter moved, when not OK
	out     []c.Checker   // the frame out, or the ICMP reply
	second  []c.Checker   // the second fragment, when the packet was split
}

const noDrop = Drop(255)

func fixtures(t testing.TB) []fixture {
	fs := append(append(append(baseFixtures(t), natFixtures(t)...), natICMPFixtures(t)...), append(synProxyFixtures(t), icmpTunFixtures(t)...)...)
	return append(fs, ttlFixtures(t)...) // ttl_test.go
}

func baseFixtures(t testing.TB) []fixture {
	big := fxPayload(1500 - 40 + 1) // a TCP packet one byte over the MTU
	return append([]fixture{
		// Forwarding methods.
		{name: "DR TCP SYN", in: seg(t, fxVIPDR, 80), verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSDR, fromClient(fxVIPDR, 80, c.TCP)...)},
		{name: "DR UDP", in: dgram(t, fxVIPDR, 53), verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSDR, fromClient(fxVIPDR, 53, c.UDP)...)},
		{name: "DR established ACK", prep: sendFirst(seg(t, fxVIPDR, 80)), in: seg(t, fxVIPDR, 80, fxFlags(ts.ACK)),
			verdict: VerdictForward, drop: noDrop, out: dr(fxRSDR, c.TCP(c.TCPFlags(ts.ACK)))},
		{name: "DR persistent", in: seg(t, fxVIPPers, 443), verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSPers, fromClient(fxVIPPers, 443, c.TCP)...)},
		{name: "TUN TCP SYN", in: seg(t, fxVIPTUN, 80), verdict: VerdictForward, drop: noDrop,
			out: tun(fxRSTUN, true, fromClient(fxVIPTUN, 80, c.TCP)...)},
		{name: "TUN UDP", in: dgram(t, fxVIPTUN, 53), verdict: VerdictForward, drop: noDrop,
			out: tun(fxRSTUN, true, fromClient(fxVIPTUN, 53, c.UDP)...)},

		// Too big for the egress MTU.
		{name: "DR DF over MTU: ICMP frag needed", in: seg(t, fxVIPDR, 80, big), verdict: VerdictReply, drop: DropFragNeeded,
			out: fragNeeded(fxVIPDR, 1500, 80)},
		{name: "TUN DF over MTU less tunnel: ICMP frag needed", in: seg(t, fxVIPTUN, 80, fxPayload(1500-40-20+1)),
			verdict: VerdictReply, drop: DropFragNeeded, out: fragNeeded(fxVIPTUN, 1480, 80)},
		{name: "DF over MTU, ICMP rate-limited", in: seg(t, fxVIPDR, 80, big), icmpLimited: true,
			verdict: VerdictDrop, drop: DropICMPLimited},
		{name: "DR no DF over MTU: two fragments", in: seg(t, fxVIPDR, 80, big, noDF), verdict: VerdictForward, drop: noDrop,
			out:    dr(fxRSDR, c.SrcAddr(fxClient), c.DstAddr(fxVIPDR), c.ID(4242), c.MoreFragments(true), c.FragmentOffset(0)),
			second: []c.Checker{c.DstMAC(fxMAC(fxRSDR)), c.IPv4(c.ID(4242), c.MoreFragments(false), c.TotalLength(20+1481-1480))}},
		{name: "TUN no DF over MTU: two tunnelled fragments", in: seg(t, fxVIPTUN, 80, big, noDF), verdict: VerdictForward, drop: noDrop,
			out:    tun(fxRSTUN, false, c.SrcAddr(fxClient), c.ID(4242), c.MoreFragments(true), c.FragmentOffset(0)),
			second: tun(fxRSTUN, false, c.SrcAddr(fxClient), c.ID(4242), c.MoreFragments(false))},
		{name: "no DF over MTU with IP options: too big", in: withOptions(t, seg(t, fxVIPDR, 80, big, noDF)),
			verdict: VerdictDrop, drop: DropTooBig},
		{name: "TUN without headroom", in: seg(t, fxVIPTUN, 80), noHeadroom: true, verdict: VerdictDrop, drop: DropNoHeadroom},

		// Drops after parsing, one per reason the processor alone decides.
		{name: "no service: unknown port", in: seg(t, fxVIPDR, 81), verdict: VerdictDrop, drop: DropNoService},
		{name: "no service: unknown VIP", in: dgram(t, fxClient, 53), verdict: VerdictDrop, drop: DropNoService},
		{name: "TCP ACK without a connection", in: seg(t, fxVIPDR, 80, fxFlags(ts.ACK)), verdict: VerdictDrop, drop: DropNoConnection},
		{name: "no real server with weight", in: seg(t, fxVIPEmpty, 80), verdict: VerdictDrop, drop: DropNoDest},
		{name: "real server deleted under the connection", prep: deleteRealAfter(seg(t, fxVIPDR, 80)),
			in: seg(t, fxVIPDR, 80, fxFlags(ts.ACK)), verdict: VerdictDrop, drop: DropDestUnavailable},
		{name: "connection table full of established connections", capacity: 1,
			prep: sendFirst(seg(t, fxVIPDR, 80), seg(t, fxVIPDR, 80, fxFlags(ts.ACK))), in: seg(t, fxVIPDR, 80, fxSport(40001)),
			verdict: VerdictDrop, drop: DropTableFull},
		{name: "persistence template table full", templates: 1, prep: sendFirst(seg(t, fxVIPPers, 443)),
			in: seg(t, fxVIPPers, 443, fxFrom(netip.MustParseAddr("198.18.0.12"))), verdict: VerdictDrop, drop: DropTemplateFull},
		{name: "neighbour unresolved", in: seg(t, fxVIPUnres, 80), verdict: VerdictDrop, drop: DropNeighborUnresolved},
		{name: "egress interface gone", prep: setDest(func(d *Dest) { d.Slot = 7 }), in: seg(t, fxVIPDR, 80),
			verdict: VerdictDrop, drop: DropNoEgress},
		{name: "forwarding method not implemented", prep: setDest(func(d *Dest) { d.Fwd = vs.Fwd(200) }), in: seg(t, fxVIPDR, 80),
			verdict: VerdictDrop, drop: DropUnsupportedFwd},

		// The flood defences (defense.go).
		{name: "SYN over its source's rate", prep: withSYNLimits(SYNLimits{PerSource: 1, Burst: 1}, seg(t, fxVIPDR, 80)),
			in: seg(t, fxVIPDR, 80, fxSport(40001)), verdict: VerdictDrop, drop: DropSYNRateSource},
		{name: "SYN over its service's rate", prep: withSYNLimits(SYNLimits{PerService: 1, Burst: 1}, seg(t, fxVIPDR, 80)),
			in: seg(t, fxVIPDR, 80, fxFrom(netip.MustParseAddr("198.18.0.12"))), verdict: VerdictDrop, drop: DropSYNRateService},
		{name: "drop_packet always on, rate 1", prep: withDefense(conntrack.Defense{DropPacket: 3, AmDropRate: 1}),
			in: dgram(t, fxVIPDR, 53), verdict: VerdictDrop, drop: DropDefensePacket},

		// Parse errors, counted by header.Reason.
		{name: "empty frame", in: nil, verdict: VerdictDrop, parse: header.TruncatedEthernet},
		{name: "ARP", in: ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), &layers.ARP{AddrType: layers.LinkTypeEthernet,
			Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 1,
			SourceHwAddress: fxClientMAC, SourceProtAddress: fxClient.AsSlice(), DstHwAddress: make([]byte, 6),
			DstProtAddress: fxVIPDR.AsSlice()}), verdict: VerdictDrop, parse: header.NotIPv4},
		{name: "truncated IPv4", in: seg(t, fxVIPDR, 80)[:14+19], verdict: VerdictDrop, parse: header.TruncatedIP},
		{name: "IP version 5", in: withIPChecksum(corrupt(seg(t, fxVIPDR, 80), 14, set(0x55))), verdict: VerdictDrop, parse: header.BadVersion},
		{name: "IHL 4", in: withIPChecksum(corrupt(seg(t, fxVIPDR, 80), 14, set(0x44))), verdict: VerdictDrop, parse: header.BadIHL},
		{name: "total length past the frame", in: withIPChecksum(corrupt(seg(t, fxVIPDR, 80), 16, set(0xff))),
			verdict: VerdictDrop, parse: header.BadTotalLength},
		{name: "bad IPv4 checksum", in: corrupt(seg(t, fxVIPDR, 80), 22, func(b byte) byte { return b - 1 }),
			verdict: VerdictDrop, parse: header.BadChecksum},
		{name: "IP option running past the header", in: badOption(t), verdict: VerdictDrop, parse: header.BadIPOptions},
		{name: "martian source", in: seg(t, fxVIPDR, 80, fxFrom(netip.MustParseAddr("127.0.0.1"))),
			verdict: VerdictDrop, parse: header.MartianSource},
		{name: "TTL 0", in: withIPChecksum(corrupt(seg(t, fxVIPDR, 80), 14+8, set(0))), verdict: VerdictDrop, parse: header.TTLZero},
		{name: "TCP header cut short", in: truncatedL4(t), verdict: VerdictDrop, parse: header.TruncatedL4},
		{name: "TCP data offset 4", in: corrupt(seg(t, fxVIPDR, 80), 14+20+12, set(0x40)), verdict: VerdictDrop, parse: header.BadTCPOffset},
		{name: "UDP length 7", in: corrupt(corrupt(dgram(t, fxVIPDR, 53), 14+20+4, set(0)), 14+20+5, set(7)),
			verdict: VerdictDrop, parse: header.BadUDPLength},

		// IPv6 to a VIP without a service, and IPv6 parse errors
		// (forward6_test.go forwards IPv6).
		{name: "IPv6 TCP SYN: no service", in: seg6(t, fxClient6, fxVIP6, 80), verdict: VerdictDrop, drop: DropNoService},
		{name: "IPv6 to ::ffff:198.19.0.1", in: seg6(t, fxClient6, netip.MustParseAddr("::ffff:198.19.0.1"), 80),
			verdict: VerdictDrop, parse: header.MartianDestination},
		{name: "IPv6 hop-by-hop after another header", in: seg6(t, fxClient6, fxVIP6, 80, ext6{60, fxPad6}, ext6{0, fxPad6}),
			verdict: VerdictDrop, parse: header.BadExtHeader},
		{name: "IPv6 five extension headers", in: seg6(t, fxClient6, fxVIP6, 80, ext6{60, fxPad6}, ext6{60, fxPad6}, ext6{60, fxPad6},
			ext6{60, fxPad6}, ext6{60, fxPad6}), verdict: VerdictDrop, parse: header.TooManyExtHeaders},
		{name: "IPv6 fragment", in: seg6(t, fxClient6, fxVIP6, 80, ext6{44, []byte{0, 1, 0, 0, 0, 7}}),
			verdict: VerdictDrop, parse: header.IPv6Fragment},
		{name: "IPv6 AH", in: seg6(t, fxClient6, fxVIP6, 80, ext6{51, make([]byte, 14)}),
			verdict: VerdictDrop, parse: header.UnknownNextHeader},
	}, icmpFragFixtures(t)...)
}

// withSYNLimits gives the processor a SYN limiter with limits l, then
// sends fs.
func withSYNLimits(l SYNLimits, fs ...[]byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		lim, err := NewSYNLimiter(l, &conntrack.ManualClock{})
		if err != nil {
			t.Fatal(err)
		}
		r.p.SetSYNLimiter(lim, nil)
		sendFirst(fs...)(t, r)
	}
}

// withDefense sets the table's IPVS defences.
func withDefense(d conntrack.Defense) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		if err := r.ct.SetDefense(d); err != nil {
			t.Fatal(err)
		}
	}
}

// sendFirst processes fs, each forwarded, before the case's frame.
func sendFirst(fs ...[]byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		for i, f := range fs {
			if v, _, _ := r.run(f, 256); v != VerdictForward {
				t.Fatalf("prep frame %d: verdict %d", i, v)
			}
		}
	}
}

// deleteRealAfter opens a connection with f, then reloads the table
// without the DR service's real server.
func deleteRealAfter(f []byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		sendFirst(f)(t, r)
		tbl := fixtureTable(t)
		for i := range tbl.Services {
			if s := &tbl.Services[i]; s.Key.Addr == fxVIPDR && s.Key.Proto == vs.TCP {
				s.Reals = nil
			}
		}
		r.apply(t, tbl)
	}
}

// setDest changes the DR TCP service's destination in the snapshot, as a
// snapshot built for interfaces or methods this processor lacks would have
// it.
func setDest(fn func(*Dest)) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		for i := range r.snap.Services {
			if s := &r.snap.Services[i]; s.Key.Addr == fxVIPDR && s.Key.Proto == vs.TCP {
				fn(&s.Dests[0])
				return
			}
		}
		t.Fatal("no DR TCP service in the snapshot")
	}
}

func withOptions(t testing.TB, f []byte) []byte {
	t.Helper()
	ip := ipHeader(fxVIPDR, false)
	ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOP NOP NOP EOL
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ip, ts.TCP(40000, 80, ts.SYN), ts.Payload(1500-24-20+1))
}

// badOption is a SYN whose one IPv4 option (a timestamp) claims 8 bytes
// where the header has 4 left.
func badOption(t testing.TB) []byte {
	t.Helper()
	ip := ipHeader(fxVIPDR, true)
	ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}} // NOP NOP NOP EOL
	f := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ip, ts.TCP(40000, 80, ts.SYN), ts.Payload(10))
	f[14+20], f[14+21] = 68, 8
	return withIPChecksum(f)
}

// truncatedL4 is an IPv4 packet whose payload, 10 bytes, is shorter than
// a TCP header.
func truncatedL4(t testing.TB) []byte {
	t.Helper()
	ip := ipHeader(fxVIPDR, true)
	ip.Protocol = layers.IPProtocolTCP
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ip, ts.Payload(10))
}

// TestProcessFixtures runs the fixture table: each case on a fresh
// processor, checking the verdict, that exactly the named counter moved
// by one, and the frame out.
func TestProcessFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			capacity := fx.capacity
			if capacity == 0 {
				capacity = 1024
			}
			templates := fx.templates
			if templates == 0 {
				templates = 64
			}
			r := newFxRig(t, capacity, templates)
			if fx.icmpLimited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				l.Allow(fxClient.As4()) // spend the one token
				r.p.SetICMPLimiter(l)
			}
			if fx.icmpFwdLimited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				l.Allow(fxRouter.As4()) // spend the one token
				r.p.SetICMPForwardLimiter(l)
			}
			if fx.prep != nil {
				fx.prep(t, r)
			}
			var before Totals
			before.Add(r.c)
			headroom := 256
			if fx.noHeadroom {
				headroom = -1
			}
			v, out, second := r.run(fx.in, headroom)
			if v != fx.verdict {
				t.Fatalf("verdict %d, want %d", v, fx.verdict)
			}
			var after Totals
			after.Add(r.c)
			for d := range NumDrops {
				want := uint64(0)
				if fx.parse == header.OK && Drop(d) == fx.drop {
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
			if fx.verdict == VerdictForward || fx.verdict == VerdictReply {
				c.Frame(t, out, fx.out...)
			}
			if (second != nil) != (fx.second != nil) {
				t.Fatalf("second fragment: got %v, want %v", second != nil, fx.second != nil)
			}
			if second != nil {
				c.Frame(t, second, fx.second...)
			}
		})
	}
}

// TestFixturesCoverEveryDropAndReason: the table has a case for every drop
// reason the processor itself decides and every parse reason; the worker
// counts the others (TX ring full, no free frame, bad descriptor, a
// local-node packet the director's stack refused).
func TestFixturesCoverEveryDropAndReason(t *testing.T) {
	drops := map[Drop]bool{DropTxRingFull: true, DropNoFreeFrame: true, DropBadDescriptor: true, DropLocalDeliver: true}
	// Fragment is Parse's signal for the fragment path (frag.go), which
	// counts by the reasons ParseFragment and the forwarding path give.
	reasons := map[header.Reason]bool{header.OK: true, header.Fragment: true}
	for _, fx := range fixtures(t) {
		if fx.parse != header.OK {
			reasons[fx.parse] = true
		} else if fx.drop != noDrop {
			drops[fx.drop] = true
		}
	}
	for _, fx := range nat6Fixtures(t) { // nat6_test.go
		drops[fx.drop] = true
	}
	for d := range NumDrops {
		if !drops[Drop(d)] {
			t.Errorf("no fixture for drop %s", Drop(d))
		}
	}
	for rs := range header.NumReasons {
		if !reasons[header.Reason(rs)] {
			t.Errorf("no fixture for parse reason %s", header.Reason(rs))
		}
	}
}
