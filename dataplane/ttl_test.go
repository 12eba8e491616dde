package dataplane

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
)

// withTTL returns the untagged frame f with its IPv4 TTL (and header
// checksum) or IPv6 hop limit set to ttl.
func withTTL(f []byte, ttl uint8) []byte {
	f = append([]byte(nil), f...)
	if f[14]>>4 == 6 {
		f[14+7] = ttl
		return f
	}
	f[14+8] = ttl
	return withIPChecksum(f)
}

// timeExceeded is ICMP Time Exceeded (type 11, code 0) from src to dst
// at dstMAC, quoting the packet as it came, with its TTL of 1.
func timeExceeded(src, dst netip.Addr, dstMAC net.HardwareAddr, quoted ...c.Checker) []c.Checker {
	return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(dstMAC),
		c.IPv4(c.SrcAddr(src), c.DstAddr(dst), c.TTL(64), c.Protocol(layers.IPProtocolICMPv4),
			c.ICMPv4(c.ICMPType(11, 0), c.ICMPMTU(0), c.Embedded(append([]c.Checker{c.DstAddr(src), c.TTL(1)}, quoted...)...)))}
}

// ttlFixtures are the fixture table's cases of decrement_ttl and of
// ip_forward's TTL check on VS/NAT replies (ttl.go).
func ttlFixtures(t testing.TB) []fixture {
	big := fxPayload(1500 - 40 + 1)
	natConn := sendFirst(seg(t, fxVIPNAT, 80))
	fs := bigDgram(t, fxVIPTUN, 2)
	return []fixture{
		{name: "DR TTL 2: forwarded with TTL 1", in: withTTL(seg(t, fxVIPDR, 80), 2), verdict: VerdictForward, drop: noDrop,
			out: dr(fxRSDR, c.TTL(1), c.SrcAddr(fxClient), c.DstAddr(fxVIPDR))},
		{name: "DR TTL 1: Time Exceeded from the VIP", in: withTTL(seg(t, fxVIPDR, 80), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			out: timeExceeded(fxVIPDR, fxClient, fxClientMAC, c.SrcAddr(fxClient), c.SrcPort(40000), c.DstPort(80))},
		{name: "DR TTL 1, ICMP rate limited", in: withTTL(seg(t, fxVIPDR, 80), 1), icmpLimited: true,
			verdict: VerdictDrop, drop: DropTTLExceededLimited},
		{name: "TUN TTL 1: Time Exceeded from the VIP", in: withTTL(dgram(t, fxVIPTUN, 53), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			out: timeExceeded(fxVIPTUN, fxClient, fxClientMAC, c.SrcPort(40000), c.DstPort(53))},
		{name: "TUN TTL 1 over the MTU: Time Exceeded before the MTU check", in: withTTL(seg(t, fxVIPTUN, 80, big), 1),
			verdict: VerdictReply, drop: DropTTLExceeded, out: append(timeExceeded(fxVIPTUN, fxClient, fxClientMAC), c.IPv4(c.TotalLength(576)))},
		{name: "DR DF over MTU: frag needed quotes the decremented packet", in: seg(t, fxVIPDR, 80, big), verdict: VerdictReply,
			drop: DropFragNeeded, out: []c.Checker{c.IPv4(c.SrcAddr(fxVIPDR), c.TotalLength(576), c.ICMPv4(c.ICMPType(3, 4), c.Embedded(c.TTL(63))))}},
		{name: "NAT TTL 1: Time Exceeded from the VIP", in: withTTL(seg(t, fxVIPNAT, 80), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			out: timeExceeded(fxVIPNAT, fxClient, fxClientMAC, c.SrcPort(40000), c.DstPort(80))},
		{name: "NAT reply TTL 1: Time Exceeded to the real server from the director", prep: natConn,
			in: withTTL(fromRS(t, 8080, ts.ACK), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxDir), c.DstAddr(fxRSNAT),
				c.ICMPv4(c.ICMPType(11, 0), c.Embedded(c.SrcAddr(fxRSNAT), c.DstAddr(fxClient), c.TTL(1), c.SrcPort(8080))))}},
		{name: "NAT reply TTL 1 and DF over MTU: TTL checked first", prep: natConn,
			in: withTTL(fromRS(t, 8080, ts.ACK, big), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			out: []c.Checker{c.IPv4(c.SrcAddr(fxDir), c.DstAddr(fxRSNAT), c.ICMPv4(c.ICMPType(11, 0)))}},
		{name: "NAT reply DF over MTU: frag needed quotes the reply as sent", prep: natConn,
			in: fromRS(t, 8080, ts.ACK, big), verdict: VerdictReply, drop: DropFragNeeded,
			out: []c.Checker{c.IPv4(c.SrcAddr(fxDir), c.ICMPv4(c.ICMPType(3, 4), c.Embedded(c.TTL(64))))}},
		{name: "ICMP error to a DR real server, TTL 1: dropped unanswered", prep: sendFirst(seg(t, fxVIPDR, 80)),
			in: withTTL(icmpAbout(t, fxVIPDR, 80), 1), verdict: VerdictDrop, drop: DropTTLExceeded},
		{name: "ICMP error to a DR real server: forwarded with TTL 63", prep: sendFirst(seg(t, fxVIPDR, 80)),
			in: icmpAbout(t, fxVIPDR, 80), verdict: VerdictForward, drop: noDrop,
			out: []c.Checker{c.IPv4(icmpForwarded(fxVIPDR, 80, 3, 4)...)}},
		{name: "NAT ICMP error from the real server, TTL 1: dropped unanswered", prep: natConn,
			in:      withTTL(natICMPFrame(t, fxMAC(fxRSNAT), fxDirMAC, fxRSNAT, fxClient, 3, 3, ipPacket(t, ipHeaderFrom(fxClient, fxRSNAT, true), ts.TCP(40000, 8080, ts.ACK), ts.Payload(10))), 1),
			verdict: VerdictDrop, drop: DropTTLExceeded},
		{name: "NAT ICMP error to the VIP, TTL 1: dropped unanswered", prep: natConn,
			in:      withTTL(natICMPFrame(t, fxClientMAC, fxDirMAC, fxClient, fxVIPNAT, 3, 4, ipPacket(t, ipHeaderFrom(fxVIPNAT, fxClient, true), ts.TCP(80, 40000, ts.SYN|ts.ACK), ts.Payload(10))), 1),
			verdict: VerdictDrop, drop: DropTTLExceeded},
		{name: "later fragment, TTL 1: dropped unanswered", prep: sendFirst(fs[0]), in: withTTL(fs[1], 1),
			verdict: VerdictDrop, drop: DropTTLExceeded},
		{name: "later fragment: forwarded with TTL 63", prep: sendFirst(fs[0]), in: fs[2], verdict: VerdictForward, drop: noDrop,
			out: tun(fxRSTUN, false, c.TTL(63), c.FragmentOffset(2960))},
	}
}

// TestDecTTL4Checksum: the incremental update of the IPv4 header checksum
// for the TTL decrement (RFC 1624 equation 3) gives the checksum computed
// afresh, over random headers and the edge where the result is 0x0000
// (which equation 2 would give as 0xffff), and gopacket accepts it.
func TestDecTTL4Checksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(h header.IPv4) {
		t.Helper()
		want := append(header.IPv4(nil), h...)
		want.SetTTL(want.TTL() - 1)
		want.SetChecksum(0)
		want.SetChecksum(want.CalculateChecksum())
		decTTL4(h)
		if !bytes.Equal(h, want) {
			t.Fatalf("after decrement\n got %x\nwant %x", []byte(h), []byte(want))
		}
		ip := &layers.IPv4{}
		if err := ip.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		var acc uint32
		for i := 0; i < len(h); i += 2 {
			acc += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		for acc > 0xffff {
			acc = acc>>16 + acc&0xffff
		}
		if acc != 0xffff {
			t.Fatalf("header %x does not verify", []byte(h))
		}
	}
	fresh := func(ttl uint8) header.IPv4 {
		h := make(header.IPv4, 20)
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		h.SetVersionIHL(20)
		h.SetTotalLength(20)
		h.SetFlagsFragment(0)
		h.SetTTL(ttl)
		h.SetChecksum(0)
		h.SetChecksum(h.CalculateChecksum())
		return h
	}
	for range 20000 {
		check(fresh(uint8(2 + rng.IntN(254))))
	}
	// The edge: headers whose decremented checksum is 0x0000, found by
	// trying identifications.
	edges := 0
	for id := range 1 << 16 {
		h := fresh(64)
		h.SetID(uint16(id))
		h.SetChecksum(0)
		h.SetChecksum(h.CalculateChecksum())
		after := append(header.IPv4(nil), h...)
		after.SetTTL(63)
		after.SetChecksum(0)
		if after.CalculateChecksum() != 0 {
			continue
		}
		check(h)
		if h.Checksum() != 0 {
			t.Fatalf("checksum %#04x, want 0x0000", h.Checksum())
		}
		if edges++; edges == 20 {
			break
		}
	}
	if edges == 0 {
		t.Fatal("no header with a decremented checksum of 0x0000 found")
	}
}

// timeExceeded6 is the ICMPv6 Time Exceeded (type 3, code 0) from src to
// dst at dstMAC quoting in's IPv6 packet, built by gopacket.
func timeExceeded6(t testing.TB, in []byte, src, dst netip.Addr, dstMAC net.HardwareAddr) []byte {
	t.Helper()
	quote := in[14:]
	if len(quote) > 1280-48 {
		quote = quote[:1280-48]
	}
	return ts.Build(t, ts.Eth(fxDirMAC, dstMAC), &layers.IPv6{HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(3, 0)}, ts.RawPayload(append(make([]byte, 4), quote...)))
}

// TestTimeExceeded6: an IPv6 packet with hop limit 1 to an IPv6 service
// (DR, IPv6 in IPv6, IPv6 in IPv4) is answered with ICMPv6 Time Exceeded
// from the VIP, byte for byte as gopacket builds it, and counted; an IPv4
// packet with TTL 1 for an IPv6 tunnel gets ICMP Time Exceeded; the rate
// limit holds an answer back; hop limit 2 leaves with 1.
func TestTimeExceeded6(t *testing.T) {
	cases := []struct {
		name    string
		in      []byte
		limited bool
		verdict Verdict
		drop    Drop
		want    func(t testing.TB, in, out []byte)
	}{
		{name: "DR", in: withTTL(frame6(t, fxVIP6DR, 80), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			want: func(t testing.TB, in, out []byte) {
				if w := timeExceeded6(t, in, fxVIP6DR, fxClient6, fxClientMAC); !bytes.Equal(out, w) {
					t.Errorf("Time Exceeded\n got %x\nwant %x", out, w)
				}
			}},
		{name: "IPv6 in IPv6", in: withTTL(frame6(t, fxVIP6TUN, 80), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			want: func(t testing.TB, in, out []byte) {
				if w := timeExceeded6(t, in, fxVIP6TUN, fxClient6, fxClientMAC); !bytes.Equal(out, w) {
					t.Errorf("Time Exceeded\n got %x\nwant %x", out, w)
				}
			}},
		{name: "IPv6 in IPv4, large", in: withTTL(frame6(t, fxVIP6TUN4, 80, f6Payload(1400)), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			want: func(t testing.TB, in, out []byte) {
				if w := timeExceeded6(t, in, fxVIP6TUN4, fxClient6, fxClientMAC); !bytes.Equal(out, w) {
					t.Errorf("Time Exceeded\n got %x\nwant %x", out, w)
				}
			}},
		{name: "IPv4 in IPv6", in: withTTL(seg(t, fxVIP4TUN6, 80), 1), verdict: VerdictReply, drop: DropTTLExceeded,
			want: func(t testing.TB, _, out []byte) {
				c.Frame(t, out, timeExceeded(fxVIP4TUN6, fxClient, fxClientMAC, c.SrcPort(40000), c.DstPort(80))...)
			}},
		{name: "DR, rate limited", in: withTTL(frame6(t, fxVIP6DR, 80), 1), limited: true, verdict: VerdictDrop, drop: DropTTLExceededLimited},
		{name: "DR, hop limit 2", in: withTTL(frame6(t, fxVIP6DR, 80), 2), verdict: VerdictForward, drop: noDrop,
			want: func(t testing.TB, in, out []byte) { checkForwarded(t, out, in, outer{rs: fxRS6DR}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newFxRig6(t, 1024, 64)
			if tc.limited {
				l, err := NewICMPLimiter(1, 1, &conntrack.ManualClock{})
				if err != nil {
					t.Fatal(err)
				}
				a := fxClient6.As16()
				l.Allow6(&a)
				r.p.SetICMPLimiter(l)
			}
			var before, after Totals
			before.Add(r.c)
			v, out, _ := r.run(tc.in, 256)
			if v != tc.verdict {
				t.Fatalf("verdict %d, want %d", v, tc.verdict)
			}
			after.Add(r.c)
			for d := range NumDrops {
				want := uint64(0)
				if Drop(d) == tc.drop {
					want = 1
				}
				if got := after.Drops[d] - before.Drops[d]; got != want {
					t.Errorf("drop %s moved by %d, want %d", Drop(d), got, want)
				}
			}
			if sent, want := after.ICMPSent-before.ICMPSent, uint64(0); v == VerdictReply && sent != 1 || v != VerdictReply && sent != want {
				t.Errorf("icmp sent moved by %d", sent)
			}
			if tc.want != nil {
				tc.want(t, tc.in, out)
			}
		})
	}
}

// TestTTLAllocs: the IPv4 forwarded path with its decrement, for DR, TUN
// and NAT both ways, and the Time Exceeded answer allocate nothing.
func TestTTLAllocs(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	sendFirst(seg(t, fxVIPNAT, 80))(t, r)
	b := make([]byte, maxFrame)
	for _, fc := range []struct {
		name string
		f    []byte
		v    Verdict
	}{
		{"DR", seg(t, fxVIPDR, 80), VerdictForward},
		{"TUN", dgram(t, fxVIPTUN, 53), VerdictForward},
		{"NAT", seg(t, fxVIPNAT, 80, fxFlags(ts.ACK)), VerdictForward},
		{"NAT reply", fromRS(t, 8080, ts.ACK), VerdictForward},
		{"Time Exceeded", withTTL(seg(t, fxVIPDR, 80), 1), VerdictReply},
	} {
		if v, _, _ := r.run(fc.f, 256); v != fc.v {
			t.Fatalf("%s: verdict %d, want %d", fc.name, v, fc.v)
		}
		if n := testing.AllocsPerRun(500, func() {
			copy(b[256:], fc.f)
			if v, _ := r.p.Process(r.snap, b, 256, len(fc.f)); v != fc.v {
				t.Fatalf("%s: verdict %d", fc.name, v)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocs per frame", fc.name, n)
		}
	}
}

// TestLocalNodeKeepsTTL: the local node is exempt from decrement_ttl (its
// packets are delivered, not forwarded): a packet with TTL 1 of a
// connection to the director itself is handed to the stack unchanged,
// while one to a remote real server is answered with Time Exceeded.
func TestLocalNodeKeepsTTL(t *testing.T) {
	r, _ := localRig(t)
	var local, remote int
	for i := range 8 {
		syn := withTTL(tcpFrame(t, [4]byte{198, 18, 0, 10}, uint16(3000+i), true, false, false, true, 0), 1)
		buf := chunk(syn)
		v, out := r.p.Process(r.snap, buf, headroom, len(syn))
		switch v {
		case VerdictLocal:
			local++
			if !bytes.Equal(buf[out.Off:out.Off+out.Len], syn[14:14+40]) {
				t.Fatalf("connection %d: the local node's packet changed", i)
			}
		case VerdictReply:
			remote++
		default:
			t.Fatalf("connection %d: verdict %d", i, v)
		}
	}
	if local == 0 || remote == 0 {
		t.Fatalf("%d local, %d answered with Time Exceeded: want both", local, remote)
	}
}

// BenchmarkForwardTTL is the cost decrement_ttl adds to a forwarded
// packet: the check and the decrement of an IPv4 TTL with its checksum
// update, and of an IPv6 hop limit.
func BenchmarkForwardTTL(b *testing.B) {
	for _, fc := range []struct {
		name string
		f    []byte
	}{{"ipv4", seg(b, fxVIPDR, 80)}, {"ipv6", frame6(b, fxVIP6DR, 80)}} {
		b.Run(fc.name, func(b *testing.B) {
			r := newFxRig(b, 64, 8)
			var pk header.Packet
			if header.Parse(fc.f, &pk) != header.OK {
				b.Fatal("frame does not parse")
			}
			r.p.pk = &pk
			f := append([]byte(nil), fc.f...)
			ttl := 14 + 8
			if pk.IPv6 {
				ttl = 14 + 7
			}
			b.ReportAllocs()
			for b.Loop() {
				f[ttl] = 64
				if _, ok := r.p.forwardTTL(r.snap, f); !ok {
					b.Fatal("dropped")
				}
			}
		})
	}
}
