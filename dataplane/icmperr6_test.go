package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// fxRouter6 is a router between a real server and the client that sends
// ICMPv6 errors about the real server's replies back toward the VIP.
var fxRouter6 = netip.MustParseAddr("2001:2:5::1")

// icmp6Frame describes an ICMPv6 error icmp6About builds: by default
// Packet Too Big (MTU 1400) from fxRouter6 to the quoted source, quoting a
// TCP reply from the VIP to fxClient6's port 40000, its IPv6 header, any
// extension headers and 8 bytes after them.
type icmp6Frame struct {
	typ, code uint8
	to        netip.Addr // default the quoted source
	proto     layers.IPProtocol
	cport     uint16
	exts      []ext6 // quoted extension headers
	version   uint8  // a bad version written into the quoted header
	cut       int    // quoted bytes after the quoted extension headers; default 8
}

type icmp6Opt func(*icmp6Frame)

func i6Type(typ, code uint8) icmp6Opt        { return func(f *icmp6Frame) { f.typ, f.code = typ, code } }
func i6To(a netip.Addr) icmp6Opt             { return func(f *icmp6Frame) { f.to = a } }
func i6Quoting(p layers.IPProtocol) icmp6Opt { return func(f *icmp6Frame) { f.proto = p } }
func i6Cport(p uint16) icmp6Opt              { return func(f *icmp6Frame) { f.cport = p } }
func i6Exts(e ...ext6) icmp6Opt              { return func(f *icmp6Frame) { f.exts = e } }
func i6Version(v uint8) icmp6Opt             { return func(f *icmp6Frame) { f.version = v } }
func i6Cut(n int) icmp6Opt                   { return func(f *icmp6Frame) { f.cut = n } }

// fragExt6 is a fragment header of offset off (8-byte units), more
// fragments set.
func fragExt6(off uint16) ext6 {
	return ext6{44, []byte{byte(off >> 5), byte(off<<3) | 1, 0, 0, 0x12, 0x34}}
}

// icmp6About is an ICMPv6 error from fxRouter6 about a reply from
// vip:vport to fxClient6.
func icmp6About(t testing.TB, vip netip.Addr, vport uint16, opts ...icmp6Opt) []byte {
	t.Helper()
	f := icmp6Frame{typ: 2, to: vip, proto: layers.IPProtocolTCP, cport: 40000, cut: 8}
	for _, o := range opts {
		o(&f)
	}
	qip := &layers.IPv6{HopLimit: 63, SrcIP: vip.AsSlice(), DstIP: fxClient6.AsSlice()}
	var l4 gopacket.SerializableLayer
	switch f.proto {
	case layers.IPProtocolTCP:
		l4 = ts.TCP(vport, f.cport, ts.ACK)
	case layers.IPProtocolUDP:
		l4 = ts.UDP(vport, f.cport)
	default:
		l4 = &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
	}
	quoted := ts.Build(t, qip, l4, ts.Payload(1420))
	if len(f.exts) > 0 {
		next := quoted[6]
		var chain []byte
		for i := len(f.exts) - 1; i >= 0; i-- {
			h := append([]byte{next, byte((len(f.exts[i].body)+2)/8 - 1)}, f.exts[i].body...)
			chain = append(h, chain...)
			next = f.exts[i].typ
		}
		quoted[6] = next
		quoted = append(append(append([]byte(nil), quoted[:40]...), chain...), quoted[40:]...)
		binary.BigEndian.PutUint16(quoted[4:], uint16(len(quoted)-40))
	}
	if f.version != 0 {
		quoted[0] = f.version<<4 | quoted[0]&0x0f
	}
	extLen := 0
	for _, e := range f.exts {
		extLen += len(e.body) + 2
	}
	quoted = quoted[:40+extLen+f.cut]
	body := binary.BigEndian.AppendUint32(nil, 1400)
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), &layers.IPv6{HopLimit: 64, SrcIP: fxRouter6.AsSlice(), DstIP: f.to.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(f.typ, f.code)}, ts.RawPayload(append(body, quoted...)))
}

type icmp6Fixture struct {
	name       string
	prep       func(testing.TB, *fxRig)
	in         []byte
	fwdLimited bool
	verdict    Verdict
	drop       Drop          // noDrop for none
	parse      header.Reason // header.OK for none
	fwd        *outer        // where a forwarded error goes
	svc        vs.Key        // the service it counts in, when forwarded
}

func icmp6Fixtures(t testing.TB) []icmp6Fixture {
	drSYN, tunSYN, tun4SYN := frame6(t, fxVIP6DR, 80), frame6(t, fxVIP6TUN, 80), frame6(t, fxVIP6TUN4, 80)
	drUDP := frame6(t, fxVIP6DR, 53, f6UDP)
	ok := header.OK
	flip := func(b []byte) []byte { b = append([]byte(nil), b...); b[14+40+2] ^= 1; return b }
	ndp := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), &layers.IPv6{HopLimit: 255, SrcIP: fxClient6.AsSlice(), DstIP: fxVIP6DR.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)},
		&layers.ICMPv6NeighborSolicitation{TargetAddress: fxVIP6DR.AsSlice()})
	echo := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), &layers.IPv6{HopLimit: 64, SrcIP: fxClient6.AsSlice(), DstIP: fxVIP6DR.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}, ts.Payload(8))
	return []icmp6Fixture{
		{name: "Packet Too Big about a DR reply: to its real server", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6DR}, svc: vs.Key{Proto: vs.TCP, Addr: fxVIP6DR, Port: 80}},
		{name: "destination unreachable about a UDP reply", prep: sendFirst(drUDP),
			in:      icmp6About(t, fxVIP6DR, 53, i6Type(1, 4), i6Quoting(layers.IPProtocolUDP)),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6DR}, svc: vs.Key{Proto: vs.UDP, Addr: fxVIP6DR, Port: 53}},
		{name: "time exceeded", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Type(3, 0)),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6DR}, svc: vs.Key{Proto: vs.TCP, Addr: fxVIP6DR, Port: 80}},
		{name: "parameter problem", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Type(4, 0)),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6DR}, svc: vs.Key{Proto: vs.TCP, Addr: fxVIP6DR, Port: 80}},
		{name: "TUN reply: IPv6 in IPv6 to its real server", prep: sendFirst(tunSYN), in: icmp6About(t, fxVIP6TUN, 80),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6TUN, outer: 6, src: fxDir6}, svc: vs.Key{Proto: vs.TCP, Addr: fxVIP6TUN, Port: 80}},
		{name: "TUN reply of an IPv4 real server: IPv6 in IPv4", prep: sendFirst(tun4SYN), in: icmp6About(t, fxVIP6TUN4, 80),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS4TUN, outer: 4, src: fxDir}, svc: vs.Key{Proto: vs.TCP, Addr: fxVIP6TUN4, Port: 80}},
		{name: "quoting a reply with extension headers and a first fragment", prep: sendFirst(drUDP),
			in: icmp6About(t, fxVIP6DR, 53, i6Quoting(layers.IPProtocolUDP),
				i6Exts(ext6{60, fxPad6}, fragExt6(0), ext6{43, []byte{0, 0, 0, 0, 0, 0}})),
			verdict: VerdictForward, drop: noDrop, parse: ok, fwd: &outer{rs: fxRS6DR}, svc: vs.Key{Proto: vs.UDP, Addr: fxVIP6DR, Port: 53}},

		// Too big for the 6in6 tunnel (MTU 1500 less 40): dropped, never
		// answered with Packet Too Big, an error about an error.
		{name: "too big for the tunnel: dropped, not answered", prep: sendFirst(tunSYN), in: icmp6About(t, fxVIP6TUN, 80, i6Cut(1400)),
			verdict: VerdictDrop, drop: DropTooBig, parse: ok},
		{name: "error of no connection", in: icmp6About(t, fxVIP6DR, 80), verdict: VerdictDrop, drop: DropICMPUnmatched, parse: ok},
		{name: "error of another client port", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Cport(40001)),
			verdict: VerdictDrop, drop: DropICMPUnmatched, parse: ok},
		{name: "error of no service", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 81),
			verdict: VerdictDrop, drop: DropICMPUnmatched, parse: ok},
		{name: "error sent elsewhere than the quoted source", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6To(fxVIP6TUN)),
			verdict: VerdictDrop, drop: DropICMPUnmatched, parse: ok},
		{name: "error rate-limited", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80), fwdLimited: true,
			verdict: VerdictDrop, drop: DropICMPForwardLimited, parse: ok},
		{name: "error after its real server was deleted", prep: deleteReal6After(drSYN), in: icmp6About(t, fxVIP6DR, 80),
			verdict: VerdictDrop, drop: DropDestUnavailable, parse: ok},

		{name: "neighbour solicitation to a VIP", in: ndp, verdict: VerdictDrop, drop: noDrop, parse: header.ICMPNotError},
		{name: "echo request to a VIP", in: echo, verdict: VerdictDrop, drop: noDrop, parse: header.ICMPNotError},
		{name: "a bad checksum", prep: sendFirst(drSYN), in: flip(icmp6About(t, fxVIP6DR, 80)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPBadChecksum},
		{name: "quoting no ports", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Cut(3)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPTruncated},
		{name: "quoting a cut IPv6 header", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Cut(-1)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPTruncated},
		{name: "quoting a cut extension header", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Exts(ext6{60, fxPad6}), i6Cut(-4)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPTruncated},
		{name: "quoting version 4", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Version(4)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPBadInner},
		{name: "quoting hop-by-hop second", prep: sendFirst(drSYN), in: icmp6About(t, fxVIP6DR, 80, i6Exts(ext6{60, fxPad6}, ext6{0, fxPad6})),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPBadInner},
		{name: "quoting five extension headers", prep: sendFirst(drSYN),
			in:      icmp6About(t, fxVIP6DR, 80, i6Exts(ext6{60, fxPad6}, ext6{60, fxPad6}, ext6{60, fxPad6}, ext6{60, fxPad6}, ext6{60, fxPad6})),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPBadInner},
		{name: "quoting ICMPv6", in: icmp6About(t, fxVIP6DR, 80, i6Quoting(layers.IPProtocolICMPv6)),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPInnerNotL4},
		{name: "quoting a non-first fragment", prep: sendFirst(drUDP),
			in:      icmp6About(t, fxVIP6DR, 53, i6Quoting(layers.IPProtocolUDP), i6Exts(fragExt6(185))),
			verdict: VerdictDrop, drop: noDrop, parse: header.ICMPInnerFragment},
	}
}

// deleteReal6After opens a connection with f, then reloads the table
// without the IPv6 DR TCP service's real server.
func deleteReal6After(f []byte) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		sendFirst(f)(t, r)
		tbl := fixtureTable6(t)
		for i := range tbl.Services {
			if s := &tbl.Services[i]; s.Key.Addr == fxVIP6DR && s.Key.Proto == vs.TCP {
				s.Reals = nil
			}
		}
		snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap, Ifaces: fxIfaces6()})
		if err != nil {
			t.Fatal(err)
		}
		r.snap = snap
	}
}

// TestProcessICMPv6Errors: an ICMPv6 error about a virtual service's reply
// goes unchanged to the connection's real server by its method, counted
// as a packet in and as forwarded; everything else is dropped and counted
// by exactly one reason, a parse reason for what is not such an error.
func TestProcessICMPv6Errors(t *testing.T) {
	for _, fx := range icmp6Fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			r := newFxRig6(t, 1024, 64)
			if fx.fwdLimited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				l.Allow([4]byte{}) // spend the one token
				r.p.SetICMPForwardLimiter(l)
			}
			if fx.prep != nil {
				fx.prep(t, r)
			}
			var before, after Totals
			before.Add(r.c)
			r.p.Flush()
			var inBefore uint64
			svc, svcOK := r.snap.ServiceByKey(fx.svc)
			if svcOK {
				inBefore = r.c.Service(svc.ID).InPkts
			}
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
			fwd := uint64(0)
			if fx.fwd != nil {
				fwd = 1
				checkForwarded(t, out, fx.in, *fx.fwd)
			}
			if got := after.ICMPForwarded - before.ICMPForwarded; got != fwd {
				t.Errorf("icmp forwarded moved by %d, want %d", got, fwd)
			}
			if fx.fwd != nil {
				r.p.Flush()
				if !svcOK {
					t.Fatalf("no service %v", fx.svc)
				}
				if got := r.c.Service(svc.ID).InPkts - inBefore; got != 1 {
					t.Errorf("service packets in moved by %d, want 1", got)
				}
			}
		})
	}
}

// TestICMPv6ErrorAllocs: forwarding an ICMPv6 error allocates nothing.
func TestICMPv6ErrorAllocs(t *testing.T) {
	r := newFxRig6(t, 1024, 64)
	sendFirst(frame6(t, fxVIP6TUN, 80))(t, r)
	in := icmp6About(t, fxVIP6TUN, 80)
	buf := make([]byte, maxFrame)
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[256:], in)
		if v, _ := r.p.Process(r.snap, buf, 256, len(in)); v != VerdictForward {
			t.Fatalf("verdict %d", v)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ICMPv6 error, want 0", allocs)
	}
}

// TestICMPv6ErrorDispatchWithNAT: with IPv6 VS/NAT and DR services in one
// table, a router's Packet Too Big about a NAT connection's reply,
// addressed to the VIP, is translated to the real server (natICMP6: outer
// destination and quoted source become [RIP]:rport, hop limit less one,
// checksum as computed from scratch), not dropped as unsupported_fwd by
// the DR/TUN path; one about a DR connection in the same table still goes
// to its real server unchanged (icmpError6).
func TestICMPv6ErrorDispatchWithNAT(t *testing.T) {
	r := newNATRig6(t, 1024)
	sendFirst(toVIP6().build(t), frame6(t, fxVIP6DR, 80))(t, r)

	in := icmp6About(t, fxVIP6NAT, 80)
	quote := append([]byte(nil), in[14+40+8:]...)
	rs := fxRS6NAT.As16()
	copy(quote[8:24], rs[:])
	binary.BigEndian.PutUint16(quote[40:], 8080)
	want := ts.Build(t, ts.Eth(fxDirMAC, fxMAC(fxRS6NAT)),
		&layers.IPv6{HopLimit: 63, SrcIP: fxRouter6.AsSlice(), DstIP: fxRS6NAT.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0)},
		ts.RawPayload(append(binary.BigEndian.AppendUint32(nil, 1400), quote...)))
	var before, after Totals
	before.Add(r.c)
	v, out, _ := r.run(in, 256)
	after.Add(r.c)
	if v != VerdictForward {
		t.Fatalf("NAT: verdict %d, want forward (drops %v)", v, after.Drops)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("NAT: frame out:\n got %x\nwant %x", out, want)
	}
	for d := range NumDrops {
		if got := after.Drops[d] - before.Drops[d]; got != 0 {
			t.Errorf("NAT: drop %s moved by %d", Drop(d), got)
		}
	}

	in = icmp6About(t, fxVIP6DR, 80)
	before = after
	v, out, _ = r.run(in, 256)
	after = Totals{}
	after.Add(r.c)
	if v != VerdictForward {
		t.Fatalf("DR: verdict %d, want forward", v)
	}
	checkForwarded(t, out, in, outer{rs: fxRS6DR})
	if got := after.ICMPForwarded - before.ICMPForwarded; got != 1 {
		t.Errorf("DR: icmp forwarded moved by %d, want 1", got)
	}
}
