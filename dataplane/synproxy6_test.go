package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// The IPv6 SYN proxy's fixtures run on the IPv6 NAT TCP service of
// natTable6 ([2001:2:0:1::8]:80 -> [2001:2::81]:8080, interface MTU
// 1500) with the proxy on for it and the fixed cookie key of
// testSYNProxy. Every frame out is compared byte for byte with the one
// gopacket builds from scratch (checksums included).

var fxNAT6Key = vs.Key{Proto: vs.TCP, Addr: fxVIP6NAT, Port: 80}

// sp6 is an IPv6 TCP segment with everything the proxy reads or writes.
type sp6 struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.Addr
	sport, dport   uint16
	tc             uint8
	flow           uint32
	hop            uint8
	flags          ts.TCPFlags
	seq, ack       uint32
	win            uint16
	opts           []layers.TCPOption
	payload        int
	exts           []ext6
}

func (f sp6) build(t testing.TB) []byte {
	t.Helper()
	ip := &layers.IPv6{TrafficClass: f.tc, FlowLabel: f.flow, HopLimit: f.hop, SrcIP: f.src.AsSlice(), DstIP: f.dst.AsSlice()}
	tcp := ts.TCP(f.sport, f.dport, f.flags)
	tcp.Seq, tcp.Ack, tcp.Window, tcp.Options = f.seq, f.ack, f.win, f.opts
	return withExts(ts.Build(t, ts.Eth(f.srcMAC, f.dstMAC), ip, tcp, ts.Payload(f.payload)), f.exts...)
}

func (f sp6) with(o ...func(*sp6)) sp6 {
	for _, fn := range o {
		fn(&f)
	}
	return f
}

// The four views of a proxied connection's segments: the client's to the
// VIP and as the server gets them, the server's and as the client gets
// them. A proxied segment's numbers are set by the caller.
func sp6ToVIP(flags ts.TCPFlags, seq, ack uint32, payload int) sp6 {
	return sp6{srcMAC: fxClientMAC, dstMAC: fxDirMAC, src: fxClient6, dst: fxVIP6NAT, sport: 40000, dport: 80,
		tc: 0x28, flow: 0x12345, hop: 64, flags: flags, seq: seq, ack: ack, win: 1000, payload: payload}
}

func (f sp6) toRS() sp6 {
	f.srcMAC, f.dstMAC, f.dst, f.dport = fxDirMAC, fxMAC(fxRS6NAT), fxRS6NAT, 8080
	return f
}

func sp6FromRS(flags ts.TCPFlags, seq, ack uint32, payload int) sp6 {
	return sp6{srcMAC: fxMAC(fxRS6NAT), dstMAC: fxDirMAC, src: fxRS6NAT, dst: fxClient6, sport: 8080, dport: 40000,
		tc: 0x48, flow: 0x54321, hop: 64, flags: flags, seq: seq, ack: ack, win: 2000, payload: payload}
}

func (f sp6) toClient() sp6 {
	f.srcMAC, f.dstMAC, f.src, f.sport = fxDirMAC, fxClientMAC, fxVIP6NAT, 80
	return f
}

func sp6Hop(h uint8) func(*sp6)                { return func(f *sp6) { f.hop = h } }
func sp6Opts(o ...layers.TCPOption) func(*sp6) { return func(f *sp6) { f.opts = o } }
func sp6Exts(e ...ext6) func(*sp6)             { return func(f *sp6) { f.exts = e } }
func sp6Port(p uint16) func(*sp6)              { return func(f *sp6) { f.sport = p } }

func mssOpt(v uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, v)}
}

// spCookie6 is the cookie the fixture proxy answers the client's SYN
// (ISN spISN, port 40000) with at counter count, for the MSS index mss.
func spCookie6(count uint32, mss uint8) uint32 {
	src, dst := fxClient6.As16(), fxVIP6NAT.As16()
	return testSYNProxy().Cookie6(&src, &dst, 40000, 80, spISN, count, mss)
}

// proxyOn6 is proxyOn for the IPv6 NAT service, on a rig newNATRig6 made.
func proxyOn6(more ...func(testing.TB, *fxRig)) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		sp := testSYNProxy()
		sp.Set(false, map[vs.Key]bool{fxNAT6Key: true})
		sp.Apply(r.snap)
		r.p.SetSYNProxy(sp)
		for _, m := range more {
			m(t, r)
		}
	}
}

// Segments of the fixtures' handshake: the client announces MSS 1440
// (index 2 of the IPv6 table), so its cookie is spCookie6(0, 2).
var (
	sp6MSS      = mssOpt(1440)
	sp6Cookie   = spCookie6(0, 2)
	sp6SYN      = sp6ToVIP(ts.SYN, spISN, 0, 0).with(sp6Opts(sp6MSS))
	sp6ACK      = sp6ToVIP(ts.ACK, spISN+1, sp6Cookie+1, 0)
	sp6SYNACK   = sp6FromRS(ts.SYN|ts.ACK, spSrvISN, spISN+1, 0).with(sp6Opts(mssOpt(1440)))
	sp6CookieAt = func(mss uint16) uint32 {
		idx := mssIndexIn(&synMSSTable6, []byte{2, 4, byte(mss >> 8), byte(mss)})
		return spCookie6(0, idx)
	}
)

// sp6SYNToRS is the SYN the server gets for the client's ACK ack: the
// ACK's IPv6 header, the client's ISN, the MSS mss, the ACK's window.
func sp6SYNToRS(ack sp6, mss uint16) sp6 {
	f := ack.toRS()
	f.flags, f.seq, f.ack, f.opts, f.payload, f.exts = ts.SYN, spISN, 0, []layers.TCPOption{mssOpt(mss)}, 0, nil
	return f
}

// sp6ACKToRS is the director's ACK of the server's SYN-ACK.
func sp6ACKToRS() sp6 {
	f := sp6ACK.toRS()
	f.tc, f.flow, f.hop, f.seq, f.ack = 0x48, 0, 64, spISN+1, spSrvISN+1 // the SYN-ACK's traffic class
	return f
}

type spFixture6 struct {
	name    string
	prep    func(testing.TB, *fxRig)
	in      []byte
	verdict Verdict
	drop    Drop   // noDrop for none
	want    []byte // the frame out, byte for byte
	second  []byte // the second frame out, byte for byte
}

func synProxy6Fixtures(t testing.TB) []spFixture6 {
	pending := proxyOn6(sendFirst(sp6ACK.build(t)))
	established := proxyOn6(sendFirst(sp6ACK.build(t), sp6SYNACK.build(t)))
	notNAT := func(t testing.TB, r *fxRig) {
		tbl := natTable6(t)
		for i := range tbl.Services {
			if s := &tbl.Services[i]; s.Key == fxNAT6Key {
				s.Reals[0].Fwd = vs.Route
			}
		}
		snap, err := Build(tbl, BuildOptions{Registry: r.reg, Loads: r.loads, Prev: r.snap, Ifaces: fxIfaces6()})
		if err != nil {
			t.Fatal(err)
		}
		r.snap = snap // the proxy's Apply not yet run
	}
	delta := sp6Cookie - spSrvISN
	data := sp6ToVIP(ts.ACK|ts.PSH, spISN+1, sp6Cookie+1, 10)
	heldOut := data.toRS()
	heldOut.ack = spSrvISN + 1
	srvData := sp6FromRS(ts.ACK|ts.PSH, spSrvISN+1, spISN+11, 10)
	srvDataOut := srvData.toClient().with(sp6Hop(63))
	srvDataOut.seq += delta
	cliACK := sp6ToVIP(ts.ACK, spISN+11, sp6Cookie+11, 0)
	cliACKOut := cliACK.toRS().with(sp6Hop(63))
	cliACKOut.ack = spSrvISN + 11
	rst := sp6FromRS(ts.RST|ts.ACK, 0, spISN+1, 0)
	rstOut := rst.toClient().with(sp6Hop(63))
	rstOut.seq = sp6Cookie + 1
	exts := sp6ACK.with(sp6Exts(ext6{0, fxPad6}, ext6{60, fxPad6}))
	return []spFixture6{
		{name: "a SYN is answered with a cookie from the VIP", prep: proxyOn6(), in: sp6SYN.build(t),
			verdict: VerdictReply, drop: noDrop,
			want: sp6{srcMAC: fxDirMAC, dstMAC: fxClientMAC, src: fxVIP6NAT, dst: fxClient6, sport: 80, dport: 40000, hop: 64,
				flags: ts.SYN | ts.ACK, seq: sp6Cookie, ack: spISN + 1, win: 65535, opts: []layers.TCPOption{mssOpt(1440)}}.build(t)},
		{name: "a SYN without an MSS option: the cookie carries 1220", prep: proxyOn6(), in: sp6ToVIP(ts.SYN, spISN, 0, 0).build(t),
			verdict: VerdictReply, drop: noDrop,
			want: sp6{srcMAC: fxDirMAC, dstMAC: fxClientMAC, src: fxVIP6NAT, dst: fxClient6, sport: 80, dport: 40000, hop: 64,
				flags: ts.SYN | ts.ACK, seq: spCookie6(0, 0), ack: spISN + 1, win: 65535, opts: []layers.TCPOption{mssOpt(1440)}}.build(t)},
		{name: "a valid ACK opens the connection with a SYN to the real server", prep: proxyOn6(), in: sp6ACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(sp6ACK, 1440).build(t)},
		{name: "an ACK of a 9000-byte MSS cookie: the SYN carries 8940", prep: proxyOn6(),
			in:      sp6ToVIP(ts.ACK, spISN+1, sp6CookieAt(9000)+1, 0).build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(sp6ACK, 8940).build(t)},
		{name: "a valid ACK through extension headers: the SYN has none", prep: proxyOn6(), in: exts.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(sp6ACK, 1440).build(t)},
		{name: "a valid ACK with data: the SYN goes, the data is held", prep: proxyOn6(), in: data.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(data, 1440).build(t)},
		{name: "an ACK of no cookie", prep: proxyOn6(), in: sp6ToVIP(ts.ACK, spISN+1, sp6Cookie+2, 0).build(t),
			verdict: VerdictDrop, drop: DropSYNProxyBadCookie},
		{name: "an ACK of the IPv4 cookie of the same ports", prep: proxyOn6(), in: sp6ToVIP(ts.ACK, spISN+1, spCookie(0, 2)+1, 0).build(t),
			verdict: VerdictDrop, drop: DropSYNProxyBadCookie},
		{name: "an ACK of a cookie three periods old", prep: proxyOn6(spAdvance(3 * synCookiePeriod)), in: sp6ACK.build(t),
			verdict: VerdictDrop, drop: DropSYNProxyExpired},
		{name: "an ACK of a cookie two periods old", prep: proxyOn6(spAdvance(2 * synCookiePeriod)), in: sp6ACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(sp6ACK, 1440).build(t)},
		{name: "a client ACK before the real server answered sends the SYN again", prep: pending, in: sp6ACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6SYNToRS(sp6ACK, 1440).build(t)},
		{name: "client data before the real server answered is held", prep: pending, in: data.build(t),
			verdict: VerdictHeld, drop: noDrop},
		{name: "a client RST before the real server answered", prep: pending, in: sp6ToVIP(ts.RST, spISN+1, 0, 0).build(t),
			verdict: VerdictDrop, drop: DropSYNProxyPending},
		{name: "a real server's ACK before its SYN-ACK", prep: pending, in: sp6FromRS(ts.ACK, spSrvISN+1, spISN+1, 0).build(t),
			verdict: VerdictDrop, drop: DropSYNProxyPending},
		{name: "the real server's SYN-ACK is answered with the client's ACK", prep: pending, in: sp6SYNACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6ACKToRS().build(t)},
		{name: "the real server's SYN-ACK through a destination options header", prep: pending,
			in:      sp6SYNACK.with(sp6Exts(ext6{60, fxPad6})).build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6ACKToRS().build(t)},
		{name: "the real server's SYN-ACK, then the held data", prep: proxyOn6(sendFirst(data.build(t))), in: sp6SYNACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: sp6ACKToRS().build(t), second: heldOut.build(t)},
		{name: "the real server's RST while pending reaches the client just after the cookie", prep: pending, in: rst.build(t),
			verdict: VerdictForward, drop: noDrop, want: rstOut.build(t)},
		{name: "established: server data shifted into the cookie's space", prep: established, in: srvData.build(t),
			verdict: VerdictForward, drop: noDrop, want: srvDataOut.build(t)},
		{name: "established: the client's acknowledgement shifted back", prep: established, in: cliACK.build(t),
			verdict: VerdictForward, drop: noDrop, want: cliACKOut.build(t)},
		{name: "a valid ACK scheduled to a real server that is not NAT", prep: proxyOn6(notNAT), in: sp6ACK.build(t),
			verdict: VerdictDrop, drop: DropSYNProxyNotNAT},
	}
}

// TestSYNProxy6Fixtures runs the IPv6 SYN proxy's fixtures: the verdict,
// exactly the named drop counter moved by one, and each frame out the
// same bytes as gopacket builds.
func TestSYNProxy6Fixtures(t *testing.T) {
	for _, fx := range synProxy6Fixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			r := newNATRig6(t, 1024)
			fx.prep(t, r)
			var before, after Totals
			before.Add(r.c)
			v, out, second := r.run(fx.in, 256)
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
			if fx.want != nil && !bytes.Equal(out, fx.want) {
				t.Errorf("frame out:\n got %x\nwant %x", out, fx.want)
			}
			if !bytes.Equal(second, fx.second) {
				t.Errorf("second frame out:\n got %x\nwant %x", second, fx.second)
			}
		})
	}
}

// TestSYNProxy6Handshake walks a proxied IPv6 connection through every
// step on one rig, with the state, the sequence state and the counters.
func TestSYNProxy6Handshake(t *testing.T) {
	r := newNATRig6(t, 1024)
	proxyOn6()(t, r)
	key := conntrack.Key{CAddr: fxClient6.As16(), VAddr: fxVIP6NAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	step := func(what string, in sp6, verdict Verdict, want ...sp6) {
		t.Helper()
		v, out, second := r.run(in.build(t), 256)
		if v != verdict {
			t.Fatalf("%s: verdict %d, want %d", what, v, verdict)
		}
		if len(want) > 0 && !bytes.Equal(out, want[0].build(t)) {
			t.Fatalf("%s:\n got %x\nwant %x", what, out, want[0].build(t))
		}
		if len(want) > 1 && !bytes.Equal(second, want[1].build(t)) {
			t.Fatalf("%s, second frame:\n got %x\nwant %x", what, second, want[1].build(t))
		}
	}
	step("SYN", sp6SYN, VerdictReply)
	if _, ok := r.ct.Lookup(&key); ok {
		t.Fatal("the SYN made an entry")
	}
	step("ACK", sp6ACK, VerdictForward, sp6SYNToRS(sp6ACK, 1440))
	cn, ok := r.ct.Lookup(&key)
	if !ok || cn.State != conntrack.SynRecv {
		t.Fatalf("entry %v %v, want SYN_RECV", ok, cn.State)
	}
	if sq, ok := r.ct.SeqOf(&cn); !ok || !sq.Pending || sq.Cookie != sp6Cookie || sq.ClientISN != spISN || sq.Window != 1000 {
		t.Fatalf("seq state %+v %v", sq, ok)
	}
	data := sp6ToVIP(ts.ACK|ts.PSH, spISN+1, sp6Cookie+1, 10)
	step("early data", data, VerdictHeld)
	step("retransmitted data", data, VerdictForward, sp6SYNToRS(data, 1440))
	held := data.toRS()
	held.ack = spSrvISN + 1
	step("server SYN-ACK", sp6SYNACK, VerdictForward, sp6ACKToRS(), held)
	if sq, ok := r.ct.SeqOf(&cn); !ok || sq.Pending || sq.Delta != sp6Cookie-spSrvISN {
		t.Fatalf("seq state after the SYN-ACK %+v %v", sq, ok)
	}
	cliACK := sp6ToVIP(ts.ACK, spISN+11, sp6Cookie+1, 0)
	out := cliACK.toRS().with(sp6Hop(63))
	out.ack = spSrvISN + 1
	step("client ACK", cliACK, VerdictForward, out)
	if cn, _ = r.ct.Lookup(&key); cn.State != conntrack.Established {
		t.Fatalf("state %v, want ESTABLISHED", cn.State)
	}
	// The server's SYN-ACK again (the director's ACK was lost) reaches
	// the client in its own sequence space.
	again := sp6SYNACK.toClient().with(sp6Hop(63))
	again.seq = sp6Cookie
	step("retransmitted SYN-ACK", sp6SYNACK, VerdictForward, again)
	var tot Totals
	tot.Add(r.c)
	if got := tot.SYNProxy; got != (SYNProxyTotals{Cookies: 1, Opened: 1, Established: 1, Held: 1, Resent: 1}) {
		t.Fatalf("counters %+v", got)
	}
}

// TestSYNProxy6ICMP: an ICMPv6 error from the client's side about a
// reply of a proxied connection reaches the real server quoting the
// reply's sequence number in the server's own space, with a right
// ICMPv6 checksum (the frame as gopacket builds it); without the proxy
// the number is quoted as it was.
func TestSYNProxy6ICMP(t *testing.T) {
	for _, proxied := range []bool{true, false} {
		r := newNATRig6(t, 1024)
		seen := sp6Cookie + 1 // the reply's sequence number as the client saw it
		if proxied {
			proxyOn6(sendFirst(sp6ACK.build(t), sp6SYNACK.build(t)))(t, r)
		} else {
			sendFirst(sp6SYN.build(t), sp6SYNACK.build(t))(t, r)
			seen = spSrvISN + 1
		}
		reply := sp6FromRS(ts.ACK, seen, spISN+1, 1200).toClient().with(sp6Hop(63)).build(t)
		in := icmp6Err(t, fxClientMAC, fxDirMAC, fxClient6, fxVIP6NAT, 64, 3, 0, reply[14:])
		quote := quoteAs(reply, true, fxRS6NAT, 8080)
		binary.BigEndian.PutUint32(quote[40+4:], spSrvISN+1)
		want := icmp6Err(t, fxDirMAC, fxMAC(fxRS6NAT), fxClient6, fxRS6NAT, 63, 3, 0, quote)
		v, out, _ := r.run(in, 256)
		if v != VerdictForward || !bytes.Equal(out, want) {
			t.Fatalf("proxied %v: verdict %d\n got %x\nwant %x", proxied, v, out, want)
		}
	}
}

// TestSYNProxy6Cookie: an IPv6 cookie checks only for its own four-tuple
// (every byte of both addresses counts), ISN and MSS index, for its
// period and the two after; the MSS index follows Linux's IPv6 table.
func TestSYNProxy6Cookie(t *testing.T) {
	sp := testSYNProxy()
	src, dst := fxClient6.As16(), fxVIP6NAT.As16()
	for mss := range uint8(4) {
		ck := sp.Cookie6(&src, &dst, 40000, 80, 7, 100, mss)
		for age := range uint32(5) {
			got, v := sp.Check6(&src, &dst, 40000, 80, 7, ck, 100+age)
			want := cookieOK
			if age > synCookieMaxAge {
				want = cookieExpired
			}
			if v != want || (v == cookieOK && got != mss) {
				t.Fatalf("mss %d age %d: %d %d", mss, age, got, v)
			}
		}
		check := func(s, d [16]byte, sport, dport uint16, isn, cookie, now uint32) cookieVerdict {
			_, v := sp.Check6(&s, &d, sport, dport, isn, cookie, now)
			return v
		}
		var variants []cookieVerdict
		for i := range 16 { // each byte of either address
			s2, d2 := src, dst
			s2[i] ^= 0x40
			d2[i] ^= 0x40
			variants = append(variants, check(s2, dst, 40000, 80, 7, ck, 100), check(src, d2, 40000, 80, 7, ck, 100))
		}
		variants = append(variants,
			check(dst, src, 40000, 80, 7, ck, 100),
			check(src, dst, 40001, 80, 7, ck, 100),
			check(src, dst, 40000, 81, 7, ck, 100),
			check(src, dst, 40000, 80, 8, ck, 100),
			check(src, dst, 40000, 80, 7, ck^1<<synHashBits, 100), // another MSS index
			check(src, dst, 40000, 80, 7, ck, 100+32),             // same low bits, 32 periods on
		)
		for i, v := range variants {
			if v != cookieBad {
				t.Errorf("mss %d: variant %d checks as %d, want bad", mss, i, v)
			}
		}
	}
	if NewSYNProxy().Cookie6(&src, &dst, 40000, 80, 7, 100, 3) == sp.Cookie6(&src, &dst, 40000, 80, 7, 100, 3) {
		t.Error("two random keys made the same cookie")
	}
	for _, tc := range []struct {
		opts []byte
		want uint8
	}{
		{nil, 0}, {[]byte{2, 4, 0x04, 0xc4}, 0}, {[]byte{2, 4, 0x02, 0x18}, 0}, {[]byte{2, 4, 0x05, 0x8c}, 1},
		{[]byte{2, 4, 0x05, 0xa0}, 2}, {[]byte{2, 4, 0x05, 0xb4}, 2}, {[]byte{1, 2, 4, 0x22, 0xec}, 3},
		{[]byte{2, 4, 0xff, 0xff}, 3}, {[]byte{2, 4, 0x22, 0xeb}, 2}, {[]byte{8, 40, 2, 4, 0x22, 0xec}, 0},
	} {
		if got := mssIndexIn(&synMSSTable6, tc.opts); got != tc.want {
			t.Errorf("IPv6 MSS index of %x = %d, want %d", tc.opts, got, tc.want)
		}
	}
}

// TestSYNProxy6Services: an IPv6 TCP service whose real servers are all
// NAT ones is proxied, globally or by its own setting; an IPv6 UDP one
// is not.
func TestSYNProxy6Services(t *testing.T) {
	r := newNATRig6(t, 1024)
	sp := testSYNProxy()
	sp.Apply(r.snap)
	tcp, ok := r.snap.ServiceByKey(fxNAT6Key)
	udp, ok2 := r.snap.ServiceByKey(vs.Key{Proto: vs.UDP, Addr: fxVIP6NAT, Port: 53})
	if !ok || !ok2 {
		t.Fatal("no IPv6 NAT services")
	}
	sp.Set(true, nil)
	if !sp.Proxied(tcp.ID) || sp.Proxied(udp.ID) {
		t.Fatalf("global: tcp %v udp %v", sp.Proxied(tcp.ID), sp.Proxied(udp.ID))
	}
	sp.Set(false, map[vs.Key]bool{fxNAT6Key: true})
	if !sp.Proxied(tcp.ID) {
		t.Fatal("the service's own setting did not proxy it")
	}
}

// TestSYNProxy6NoAllocs: every IPv6 path of the proxy allocates nothing:
// the cookie answer, a refused ACK, a valid ACK opening a connection, the
// server's SYN-ACK answered (with a held segment), the SYN sent again,
// the translation both ways and of an ICMPv6 error.
func TestSYNProxy6NoAllocs(t *testing.T) {
	r := newNATRig6(t, 1<<16)
	proxyOn6(sendFirst(sp6ACK.build(t), sp6SYNACK.build(t)))(t, r)
	sp := testSYNProxy()
	pend := sp6ToVIP(ts.ACK, spISN+1, 0, 0).with(sp6Port(39999))
	pend.ack = cookieFor(sp, 39999) + 1
	sendFirst(pend.build(t))(t, r)
	reply := sp6FromRS(ts.ACK, sp6Cookie+1, spISN+1, 100).toClient().with(sp6Hop(63)).build(t)
	frames := map[string][]byte{
		"SYN":               sp6SYN.build(t),
		"bad ACK":           sp6ToVIP(ts.ACK, spISN+1, sp6Cookie+5, 0).with(sp6Port(41000)).build(t),
		"SYN again":         pend.build(t),
		"client data":       sp6ToVIP(ts.ACK|ts.PSH, spISN+1, sp6Cookie+1, 100).build(t),
		"server data":       sp6FromRS(ts.ACK|ts.PSH, spSrvISN+1, spISN+1, 100).build(t),
		"ICMPv6 to the VIP": icmp6Err(t, fxClientMAC, fxDirMAC, fxClient6, fxVIP6NAT, 64, 3, 0, reply[14:]),
	}
	buf := make([]byte, maxFrame)
	for name, f := range frames {
		if n := testing.AllocsPerRun(200, func() {
			copy(buf[256:], f)
			if v, _ := r.p.Process(r.snap, buf, 256, len(f)); v == VerdictDrop && name != "bad ACK" {
				t.Fatalf("%s dropped", name)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
	// A new connection each run: its valid ACK with data (SYN out, data
	// held), then the server's SYN-ACK (ACK and held data out).
	ack := sp6ToVIP(ts.ACK|ts.PSH, spISN+1, 0, 10).build(t)
	synack := sp6FromRS(ts.SYN|ts.ACK, spSrvISN, spISN+1, 0).build(t)
	port := uint16(20000)
	if n := testing.AllocsPerRun(200, func() {
		port++
		copy(buf[256:], ack)
		binary.BigEndian.PutUint16(buf[256+54:], port)
		binary.BigEndian.PutUint32(buf[256+54+8:], cookieFor(sp, port)+1)
		if v, _ := r.p.Process(r.snap, buf, 256, len(ack)); v != VerdictForward {
			t.Fatalf("port %d: ACK verdict %d", port, v)
		}
		copy(buf[256:], synack)
		binary.BigEndian.PutUint16(buf[256+54+2:], port)
		if v, o := r.p.Process(r.snap, buf, 256, len(synack)); v != VerdictForward || !o.Second {
			t.Fatalf("port %d: SYN-ACK verdict %d, second %v", port, v, o.Second)
		}
	}); n != 0 {
		t.Errorf("open and establish: %v allocations per connection", n)
	}
}

// cookieFor is the fixture cookie of a SYN without an MSS option from
// client port port, at counter 0, made by sp (testSYNProxy).
func cookieFor(sp *SYNProxy, port uint16) uint32 {
	src, dst := fxClient6.As16(), fxVIP6NAT.As16()
	return sp.Cookie6(&src, &dst, port, 80, spISN, 0, 0)
}

// BenchmarkSYNProxy6Ratio times, in one run, the IPv4 and the IPv6
// proxy's cookie answer to a SYN and an established connection's client
// data segment with the translation, and reports each IPv6 one as a
// ratio to its IPv4 twin.
func BenchmarkSYNProxy6Ratio(b *testing.B) {
	r4 := newFxRig(b, 1<<16, 64)
	proxyOn(sendFirst(validACK(b), spFromRS(b, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0)))(b, r4)
	r6 := newNATRig6(b, 1<<16)
	proxyOn6(sendFirst(sp6ACK.build(b), sp6SYNACK.build(b)))(b, r6)
	best := [4]int64{1 << 62, 1 << 62, 1 << 62, 1 << 62}
	buf := make([]byte, maxFrame)
	type job struct {
		r *fxRig
		f []byte
		v Verdict
	}
	// The SYNs come from another port than the established connection's.
	jobs := [4]job{
		{r4, spSeg(b, ts.SYN, spISN, 0, 0, mss1460, fxPort(41000)), VerdictReply},
		{r4, spSeg(b, ts.ACK|ts.PSH, spISN+1, spCookie(0, 3)+1, 100), VerdictForward},
		{r6, sp6SYN.with(sp6Port(41000)).build(b), VerdictReply},
		{r6, sp6ToVIP(ts.ACK|ts.PSH, spISN+1, sp6Cookie+1, 100).build(b), VerdictForward},
	}
	for i, j := range jobs {
		copy(buf[256:], j.f)
		if v, _ := j.r.p.Process(j.r.snap, buf, 256, len(j.f)); v != j.v {
			b.Fatalf("job %d: verdict %d, want %d", i, v, j.v)
		}
	}
	const round = 1000
	b.ReportAllocs()
	for b.Loop() {
		for i, j := range jobs {
			start := time.Now()
			for range round {
				copy(buf[256:], j.f)
				j.r.p.Process(j.r.snap, buf, 256, len(j.f))
			}
			best[i] = min(best[i], time.Since(start).Nanoseconds())
		}
	}
	b.ReportMetric(float64(best[0])/round, "ns/syn4")
	b.ReportMetric(float64(best[1])/round, "ns/data4")
	b.ReportMetric(float64(best[2])/float64(best[0]), "syn6/syn4")
	b.ReportMetric(float64(best[3])/float64(best[1]), "data6/data4")
}
