package dataplane

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
	"github.com/afvs/afvs/vs"
)

// The SYN proxy's fixtures run on the NAT TCP service of the fixture
// table (198.19.0.6:80 -> 198.18.2.61:8080) with the proxy on for it and
// a cookie key fixed so that the frames can carry valid cookies.

var fxNATKey = vs.Key{Proto: vs.TCP, Addr: fxVIPNAT, Port: 80}

const (
	spISN    = 1000  // the client's initial sequence number
	spSrvISN = 50000 // the real server's
)

func testSYNProxy() *SYNProxy {
	sp := NewSYNProxy()
	sp.k0, sp.k1 = 0x0123456789abcdef, 0xfedcba9876543210
	return sp
}

// spCookie is the cookie the fixture proxy answers the client's SYN with
// at counter count, for the MSS index mss.
func spCookie(count uint32, mss uint8) uint32 {
	return testSYNProxy().Cookie(fxClient.As4(), fxVIPNAT.As4(), 40000, 80, spISN, count, mss)
}

// proxyOn turns the proxy on for the NAT TCP service, then runs more.
func proxyOn(more ...func(testing.TB, *fxRig)) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		t.Helper()
		sp := testSYNProxy()
		sp.Set(false, map[vs.Key]bool{fxNATKey: true})
		sp.Apply(r.snap)
		r.p.SetSYNProxy(sp)
		for _, m := range more {
			m(t, r)
		}
	}
}

func spAdvance(d time.Duration) func(testing.TB, *fxRig) {
	return func(_ testing.TB, r *fxRig) { r.clock.Advance(d) }
}

var mss1460 = layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}

// fxPort is a TCP option standing for the client's port (40000 without
// it): spSeg takes it out of the options.
func fxPort(p uint16) layers.TCPOption {
	return layers.TCPOption{OptionType: 255, OptionData: []byte{byte(p >> 8), byte(p)}}
}

// spSeg is a client segment to the NAT service.
func spSeg(t testing.TB, flags ts.TCPFlags, seq, ack uint32, payload int, opts ...layers.TCPOption) []byte {
	t.Helper()
	sport := uint16(40000)
	var keep []layers.TCPOption
	for _, o := range opts {
		if o.OptionType == 255 {
			sport = binary.BigEndian.Uint16(o.OptionData)
			continue
		}
		keep = append(keep, o)
	}
	tcp := ts.TCP(sport, 80, flags)
	tcp.Seq, tcp.Ack, tcp.Options = seq, ack, keep
	return ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), ipHeader(fxVIPNAT, true), tcp, ts.Payload(payload))
}

// spFromRS is a segment of the NAT real server to the client.
func spFromRS(t testing.TB, flags ts.TCPFlags, seq, ack uint32, payload int, opts ...layers.TCPOption) []byte {
	t.Helper()
	tcp := ts.TCP(8080, 40000, flags)
	tcp.Seq, tcp.Ack, tcp.Options = seq, ack, opts
	return ts.Build(t, ts.Eth(fxMAC(fxRSNAT), fxDirMAC), ipHeaderFrom(fxRSNAT, fxClient, true), tcp, ts.Payload(payload))
}

// validACK is the client's ACK of the cookie made at counter 0.
func validACK(t testing.TB) []byte {
	return spSeg(t, ts.ACK, spISN+1, spCookie(0, 3)+1, 0)
}

func synProxyFixtures(t testing.TB) []fixture {
	notNAT := func(t testing.TB, r *fxRig) {
		// The snapshot changes under the proxy (its Apply not yet run):
		// the service's one real server is now a DR one.
		tbl := fixtureTable(t)
		for i := range tbl.Services {
			if s := &tbl.Services[i]; s.Key == fxNATKey {
				s.Reals[0].Fwd = vs.Route
			}
		}
		r.apply(t, tbl)
	}
	toRS := func(flags ts.TCPFlags) []c.Checker {
		return []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)),
			c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT), c.NotTunnelled(), c.TCP(c.SrcPort(40000), c.DstPort(8080), c.TCPFlags(flags)))}
	}
	return []fixture{
		{name: "SYN proxy: a SYN is answered with a cookie", prep: proxyOn(), in: spSeg(t, ts.SYN, spISN, 0, 0, mss1460),
			verdict: VerdictReply, drop: noDrop,
			out: []c.Checker{c.SrcMAC(fxDirMAC), c.DstMAC(fxClientMAC),
				c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.TCP(c.SrcPort(80), c.DstPort(40000), c.TCPFlags(ts.SYN|ts.ACK), c.PayloadLen(0)))}},
		{name: "SYN proxy: a valid ACK opens the connection with a SYN to the real server", prep: proxyOn(), in: validACK(t),
			verdict: VerdictForward, drop: noDrop, out: toRS(ts.SYN)},
		{name: "SYN proxy: an ACK of no cookie", prep: proxyOn(), in: spSeg(t, ts.ACK, spISN+1, spCookie(0, 3)+2, 0),
			verdict: VerdictDrop, drop: DropSYNProxyBadCookie},
		{name: "SYN proxy: an ACK of a cookie three periods old", prep: proxyOn(spAdvance(3 * synCookiePeriod)), in: validACK(t),
			verdict: VerdictDrop, drop: DropSYNProxyExpired},
		{name: "SYN proxy: a client ACK before the real server answered sends the SYN again", prep: proxyOn(sendFirst(validACK(t))),
			in: spSeg(t, ts.ACK, spISN+1, spCookie(0, 3)+1, 0), verdict: VerdictForward, drop: noDrop, out: toRS(ts.SYN)},
		{name: "SYN proxy: a real server's ACK before its SYN-ACK", prep: proxyOn(sendFirst(validACK(t))),
			in: spFromRS(t, ts.ACK, spSrvISN+1, spISN+1, 0), verdict: VerdictDrop, drop: DropSYNProxyPending},
		{name: "SYN proxy: client data before the real server answered is held", prep: proxyOn(sendFirst(validACK(t))),
			in: spSeg(t, ts.ACK|ts.PSH, spISN+1, spCookie(0, 3)+1, 10), verdict: VerdictHeld, drop: noDrop},
		{name: "SYN proxy: the real server's SYN-ACK is answered with the client's ACK", prep: proxyOn(sendFirst(validACK(t))),
			in: spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0, mss1460), verdict: VerdictForward, drop: noDrop, out: toRS(ts.ACK)},
		{name: "SYN proxy: a valid ACK scheduled to a real server that is not NAT", prep: proxyOn(notNAT), in: validACK(t),
			verdict: VerdictDrop, drop: DropSYNProxyNotNAT},
	}
}

// tcpOf decodes frame's TCP header with gopacket.
func tcpOf(t *testing.T, frame []byte) *layers.TCP {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	l, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if l == nil {
		t.Fatalf("no TCP header in %x", frame)
	}
	return l
}

func wantSeqAck(t *testing.T, what string, frame []byte, seq, ack uint32) *layers.TCP {
	t.Helper()
	l := tcpOf(t, frame)
	if l.Seq != seq || l.Ack != ack {
		t.Fatalf("%s: seq %d ack %d, want %d %d", what, l.Seq, l.Ack, seq, ack)
	}
	return l
}

func onlyMSS(t *testing.T, what string, l *layers.TCP, mss uint16) {
	t.Helper()
	var got []layers.TCPOption
	for _, o := range l.Options {
		if o.OptionType != layers.TCPOptionKindNop && o.OptionType != layers.TCPOptionKindEndList {
			got = append(got, o)
		}
	}
	if len(got) != 1 || got[0].OptionType != layers.TCPOptionKindMSS || binary.BigEndian.Uint16(got[0].OptionData) != mss {
		t.Fatalf("%s: options %v, want only MSS %d", what, l.Options, mss)
	}
}

// TestSYNProxyHandshake walks a proxied connection through every step
// and checks each frame out in full: sequence and acknowledgement
// numbers, options, windows and checksums.
func TestSYNProxyHandshake(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	proxyOn()(t, r)
	key := conntrack.Key{CAddr: fxClient.As16(), VAddr: fxVIPNAT.As16(), CPort: 40000, VPort: 80, Proto: 6}
	cookie := spCookie(0, 3)
	sack := layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2}
	wscale := layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}}
	tstamp := layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}

	// 1. SYN: a cookie SYN-ACK offering only the MSS; no entry.
	v, out, _ := r.run(spSeg(t, ts.SYN, spISN, 0, 0, mss1460, sack, tstamp, wscale), 256)
	if v != VerdictReply {
		t.Fatalf("SYN: verdict %d", v)
	}
	c.Frame(t, out, c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.DontFragment(true), c.TCP(c.TCPFlags(ts.SYN|ts.ACK))))
	l := wantSeqAck(t, "SYN-ACK", out, cookie, spISN+1)
	onlyMSS(t, "SYN-ACK", l, 1460)
	if l.Window != 65535 {
		t.Fatalf("SYN-ACK window %d", l.Window)
	}
	if _, ok := r.ct.Lookup(&key); ok {
		t.Fatal("the SYN made an entry")
	}
	// The same SYN again gets the same cookie.
	if _, out2, _ := r.run(spSeg(t, ts.SYN, spISN, 0, 0, mss1460), 256); tcpOf(t, out2).Seq != cookie {
		t.Fatal("a retransmitted SYN got another cookie")
	}

	// 2. The client's ACK: the server gets a SYN with the client's ISN
	// and the client's MSS; the entry is SYN_RECV and pending.
	v, out, _ = r.run(validACK(t), 256)
	if v != VerdictForward {
		t.Fatalf("ACK: verdict %d", v)
	}
	c.Frame(t, out, c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT),
		c.TCP(c.SrcPort(40000), c.DstPort(8080), c.TCPFlags(ts.SYN), c.PayloadLen(0))))
	l = wantSeqAck(t, "SYN to the server", out, spISN, 0)
	onlyMSS(t, "SYN to the server", l, 1460)
	if l.Window != 1000 {
		t.Fatalf("SYN window %d, want the client's 1000", l.Window)
	}
	cn, ok := r.ct.Lookup(&key)
	if !ok || cn.State != conntrack.SynRecv {
		t.Fatalf("entry %v %v, want SYN_RECV", ok, cn.State)
	}
	if sq, ok := r.ct.SeqOf(&cn); !ok || !sq.Pending || sq.Cookie != cookie || sq.ClientISN != spISN {
		t.Fatalf("seq state %+v %v", sq, ok)
	}

	// 3. The client's first data, before the server answers: held.
	data := spSeg(t, ts.ACK|ts.PSH, spISN+1, cookie+1, 10)
	if v, _, _ = r.run(data, 256); v != VerdictHeld {
		t.Fatalf("early data: verdict %d, want held", v)
	}

	// The client's retransmission (its data seemed lost: the server has
	// not answered) sends the server the same SYN again.
	v, out, _ = r.run(spSeg(t, ts.ACK|ts.PSH, spISN+1, cookie+1, 10), 256)
	if v != VerdictForward {
		t.Fatalf("retransmitted data: verdict %d, want the SYN again", v)
	}
	c.Frame(t, out, c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT), c.TotalLength(44),
		c.TCP(c.DstPort(8080), c.TCPFlags(ts.SYN), c.PayloadLen(0))))
	onlyMSS(t, "SYN again", wantSeqAck(t, "SYN again", out, spISN, 0), 1460)

	// 4. The server's SYN-ACK: answered with the ACK, then the held data,
	// acknowledgement translated; nothing goes to the client.
	v, out, second := r.run(spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0, mss1460), 256)
	if v != VerdictForward || second == nil {
		t.Fatalf("server SYN-ACK: verdict %d, second %v", v, second != nil)
	}
	c.Frame(t, out, c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT),
		c.TCP(c.SrcPort(40000), c.DstPort(8080), c.TCPFlags(ts.ACK), c.PayloadLen(0))))
	l = wantSeqAck(t, "ACK to the server", out, spISN+1, spSrvISN+1)
	if l.Window != 1000 {
		t.Fatalf("ACK window %d, want the client's 1000", l.Window)
	}
	c.Frame(t, second, c.SrcMAC(fxDirMAC), c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.SrcAddr(fxClient), c.DstAddr(fxRSNAT),
		c.TCP(c.SrcPort(40000), c.DstPort(8080), c.TCPFlags(ts.ACK|ts.PSH), c.Payload(ts.Payload(10)))))
	wantSeqAck(t, "held data", second, spISN+1, spSrvISN+1)

	// 5. From now on: the server's numbers shifted into the cookie's
	// space, the client's acknowledgements back.
	v, out, _ = r.run(spFromRS(t, ts.ACK|ts.PSH, spSrvISN+1, spISN+11, 10), 256)
	if v != VerdictForward {
		t.Fatalf("server data: verdict %d", v)
	}
	c.Frame(t, out, c.DstMAC(fxClientMAC), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient),
		c.TCP(c.SrcPort(80), c.DstPort(40000), c.Payload(ts.Payload(10)))))
	wantSeqAck(t, "server data", out, cookie+1, spISN+11)
	v, out, _ = r.run(spSeg(t, ts.ACK, spISN+11, cookie+11, 0), 256)
	if v != VerdictForward {
		t.Fatalf("client ACK: verdict %d", v)
	}
	c.Frame(t, out, c.IPv4(c.DstAddr(fxRSNAT), c.TCP(c.DstPort(8080))))
	wantSeqAck(t, "client ACK", out, spISN+11, spSrvISN+11)
	// A retransmitted SYN-ACK (the ACK was lost) reaches the client in
	// its own sequence space, and the client's answer the server.
	_, out, _ = r.run(spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0), 256)
	wantSeqAck(t, "retransmitted SYN-ACK", out, cookie, spISN+1)

	cn, _ = r.ct.Lookup(&key)
	if cn.State != conntrack.Established {
		t.Fatalf("state %v, want ESTABLISHED", cn.State)
	}
	var tot Totals
	tot.Add(r.c)
	if got := tot.SYNProxy; got != (SYNProxyTotals{Cookies: 2, Opened: 1, Established: 1, Held: 1, Resent: 1}) {
		t.Fatalf("counters %+v", got)
	}
}

// TestSYNProxyServerRefuses: a RST from the server while the connection
// is pending reaches the client just after the cookie, where the client
// accepts it.
func TestSYNProxyServerRefuses(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	proxyOn(sendFirst(validACK(t)))(t, r)
	v, out, _ := r.run(spFromRS(t, ts.RST|ts.ACK, 0, spISN+1, 0), 256)
	if v != VerdictForward {
		t.Fatalf("verdict %d", v)
	}
	c.Frame(t, out, c.DstMAC(fxClientMAC), c.IPv4(c.SrcAddr(fxVIPNAT), c.DstAddr(fxClient), c.TCP(c.TCPFlags(ts.RST|ts.ACK))))
	wantSeqAck(t, "RST", out, spCookie(0, 3)+1, spISN+1)
}

// TestSYNProxyCookie: a cookie checks only for its own four-tuple, ISN
// and MSS index, for its period and the two after.
func TestSYNProxyCookie(t *testing.T) {
	sp := testSYNProxy()
	src, dst := fxClient.As4(), fxVIPNAT.As4()
	for mss := range uint8(4) {
		ck := sp.Cookie(src, dst, 40000, 80, 7, 100, mss)
		for age := range uint32(5) {
			got, v := sp.Check(src, dst, 40000, 80, 7, ck, 100+age)
			want := cookieOK
			if age > synCookieMaxAge {
				want = cookieExpired
			}
			if v != want || (v == cookieOK && got != mss) {
				t.Fatalf("mss %d age %d: %d %d", mss, age, got, v)
			}
		}
		other := [4]byte{198, 18, 0, 99}
		for i, bad := range []cookieVerdict{
			func() cookieVerdict { _, v := sp.Check(other, dst, 40000, 80, 7, ck, 100); return v }(),
			func() cookieVerdict { _, v := sp.Check(src, other, 40000, 80, 7, ck, 100); return v }(),
			func() cookieVerdict { _, v := sp.Check(src, dst, 40001, 80, 7, ck, 100); return v }(),
			func() cookieVerdict { _, v := sp.Check(src, dst, 40000, 81, 7, ck, 100); return v }(),
			func() cookieVerdict { _, v := sp.Check(src, dst, 40000, 80, 8, ck, 100); return v }(),
			func() cookieVerdict { _, v := sp.Check(src, dst, 40000, 80, 7, ck^1<<synHashBits, 100); return v }(), // another MSS index
			func() cookieVerdict { _, v := sp.Check(src, dst, 40000, 80, 7, ck, 100+32); return v }(),             // same low bits, 32 periods on
		} {
			if bad != cookieBad {
				t.Errorf("mss %d: variant %d checks as %d, want bad", mss, i, bad)
			}
		}
	}
	// Another key makes other cookies.
	if NewSYNProxy().Cookie(src, dst, 40000, 80, 7, 100, 3) == sp.Cookie(src, dst, 40000, 80, 7, 100, 3) {
		t.Error("two random keys made the same cookie")
	}
	for _, tc := range []struct {
		opts []byte
		want uint8
	}{
		{nil, 0}, {[]byte{2, 4, 0x05, 0xb4}, 3}, {[]byte{1, 1, 2, 4, 0x05, 0xa0}, 2}, {[]byte{2, 4, 0x05, 0x14}, 1},
		{[]byte{2, 4, 0x02, 0x00}, 0}, {[]byte{2, 4, 0x23, 0x28}, 3}, {[]byte{0, 2, 4, 0x05, 0xb4}, 0},
		{[]byte{3, 3, 7, 2, 4, 0x05, 0xb4}, 3}, {[]byte{2, 4, 0x05}, 0}, {[]byte{8, 0}, 0}, {[]byte{8, 40, 2, 4, 5, 0xb4}, 0},
	} {
		if got := mssIndex(tc.opts); got != tc.want {
			t.Errorf("mssIndex(%x) = %d, want %d", tc.opts, got, tc.want)
		}
	}
}

// TestSYNProxyServices: the proxy takes only eligible services (TCP,
// IPv4, all real servers NAT), globally or one by one, and a service's
// own setting wins over the global one.
func TestSYNProxyServices(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	sp := testSYNProxy()
	sp.Apply(r.snap)
	idOf := func(k vs.Key) uint32 {
		s, ok := r.snap.ServiceByKey(k)
		if !ok {
			t.Fatalf("no service %v", k)
		}
		return s.ID
	}
	nat, natUDP, dr := idOf(fxNATKey), idOf(vs.Key{Proto: vs.UDP, Addr: fxVIPNAT, Port: 53}), idOf(vs.Key{Proto: vs.TCP, Addr: fxVIPDR, Port: 80})
	if sp.Proxied(nat) || sp.active.Load() {
		t.Fatal("proxied before Set")
	}
	sp.Set(true, nil)
	if !sp.Proxied(nat) || sp.Proxied(natUDP) || sp.Proxied(dr) {
		t.Fatalf("global: nat %v udp %v dr %v", sp.Proxied(nat), sp.Proxied(natUDP), sp.Proxied(dr))
	}
	sp.Set(true, map[vs.Key]bool{fxNATKey: false})
	if sp.Proxied(nat) {
		t.Fatal("a service's false did not win over the global setting")
	}
	sp.Set(false, map[vs.Key]bool{{Proto: vs.TCP, Addr: fxVIPDR, Port: 80}: true})
	if sp.Proxied(dr) {
		t.Fatal("a DR service was proxied")
	}
	if !sp.active.Load() {
		t.Fatal("active was cleared: connections made while on would lose their translation")
	}
}

// TestSYNProxyOffUnchanged: with the proxy off for the service, the NAT
// path forwards the client's SYN as before.
func TestSYNProxyOffUnchanged(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	sp := testSYNProxy()
	sp.Set(true, map[vs.Key]bool{fxNATKey: false})
	sp.Apply(r.snap)
	r.p.SetSYNProxy(sp)
	v, out, _ := r.run(spSeg(t, ts.SYN, spISN, 0, 0), 256)
	if v != VerdictForward {
		t.Fatalf("verdict %d", v)
	}
	wantSeqAck(t, "SYN", out, spISN, 0)
}

// TestSYNProxyNoAllocs: the cookie answer, a refused ACK and the
// translation of established traffic both ways allocate nothing.
func TestSYNProxyNoAllocs(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	proxyOn(sendFirst(validACK(t), spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0)))(t, r)
	cookie := spCookie(0, 3)
	frames := map[string][]byte{
		"SYN":         spSeg(t, ts.SYN, spISN+7, 0, 0, mss1460),
		"bad ACK":     spSeg(t, ts.ACK, spISN+1, cookie+5, 0, mss1460),
		"client data": spSeg(t, ts.ACK|ts.PSH, spISN+1, cookie+1, 100),
		"server data": spFromRS(t, ts.ACK|ts.PSH, spSrvISN+1, spISN+1, 100),
	}
	buf := make([]byte, maxFrame)
	for name, f := range frames {
		if n := testing.AllocsPerRun(200, func() {
			copy(buf[256:], f)
			r.p.Process(r.snap, buf, 256, len(f))
		}); n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
}

// BenchmarkSYNProxy compares, on one processor: a SYN to a NAT service
// without the proxy (scheduled, an entry made, forwarded) against the
// proxy's cookie answer, each SYN from another client port; and an
// established connection's client data segment without and with the
// proxy's translation.
func BenchmarkSYNProxy(b *testing.B) {
	for _, proxied := range []bool{false, true} {
		name := map[bool]string{false: "nat", true: "proxy"}[proxied]
		b.Run(name+"/syn", func(b *testing.B) {
			r := newFxRig(b, 1<<20, 64)
			if proxied {
				proxyOn()(b, r)
			}
			f := spSeg(b, ts.SYN, spISN, 0, 0, mss1460)
			buf := make([]byte, maxFrame)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				copy(buf[256:], f)
				binary.BigEndian.PutUint16(buf[256+34:], uint16(i)) // source port; the TCP checksum is not checked
				binary.BigEndian.PutUint32(buf[256+26:], uint32(0xc6120000)|uint32(i>>16)&0xffff)
				ip := header.IPv4(buf[256+14:])
				ip.SetChecksum(ip.CalculateChecksum())
				r.p.Process(r.snap, buf, 256, len(f))
			}
		})
		b.Run(name+"/data", func(b *testing.B) {
			r := newFxRig(b, 1024, 64)
			ack := spCookie(0, 3) + 1
			if proxied {
				proxyOn(sendFirst(validACK(b), spFromRS(b, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0)))(b, r)
			} else {
				sendFirst(spSeg(b, ts.SYN, spISN, 0, 0), spFromRS(b, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0))(b, r)
				ack = spSrvISN + 1
			}
			f := spSeg(b, ts.ACK|ts.PSH, spISN+1, ack, 100)
			buf := make([]byte, maxFrame)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				copy(buf[256:], f)
				if v, _ := r.p.Process(r.snap, buf, 256, len(f)); v != VerdictForward {
					b.Fatalf("verdict %d", v)
				}
			}
		})
	}
}

// TestSYNProxyICMP: a fragmentation-needed from the client's side about
// a reply of a proxied connection reaches the real server quoting the
// reply's sequence number in the server's own space, with a right ICMP
// checksum; without the proxy the number is quoted as it was.
func TestSYNProxyICMP(t *testing.T) {
	cookie := spCookie(0, 3)
	for _, proxied := range []bool{true, false} {
		r := newFxRig(t, 1024, 64)
		seq := cookie + 1 // what the client saw
		if proxied {
			proxyOn(sendFirst(validACK(t), spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0)))(t, r)
		} else {
			sendFirst(spSeg(t, ts.SYN, spISN, 0, 0), spFromRS(t, ts.SYN|ts.ACK, spSrvISN, spISN+1, 0))(t, r)
			seq = spSrvISN + 1
		}
		tcp := ts.TCP(80, 40000, ts.ACK)
		tcp.Seq, tcp.Ack = seq, spISN+1
		reply := ipPacket(t, ipHeaderFrom(fxVIPNAT, fxClient, true), tcp, ts.Payload(1400))
		in := natICMPFrame(t, fxClientMAC, fxDirMAC, fxClient, fxVIPNAT, 3, 4, reply)
		v, out, _ := r.run(in, 256)
		if v != VerdictForward {
			t.Fatalf("proxied %v: verdict %d", proxied, v)
		}
		c.Frame(t, out, c.DstMAC(fxMAC(fxRSNAT)), c.IPv4(c.DstAddr(fxRSNAT),
			c.ICMPv4(c.ICMPType(3, 4), c.Embedded(c.SrcAddr(fxRSNAT), c.DstAddr(fxClient), c.SrcPort(8080), c.DstPort(40000)))))
		if got := binary.BigEndian.Uint32(out[14+20+8+20+4:]); got != spSrvISN+1 {
			t.Errorf("proxied %v: quoted sequence number %d, want the server's %d", proxied, got, spSrvISN+1)
		}
	}
}

// TestSYNProxyHoldSlots: connections in consecutive table slots with the
// same generation, as a fresh table makes them, spread over the hold
// slots, so that their early data segments do not push each other out.
func TestSYNProxyHoldSlots(t *testing.T) {
	used := map[uint64]bool{}
	for i := range uint64(256) {
		used[holdIndex((i+1)<<32|1)] = true
	}
	if len(used) < 128 {
		t.Fatalf("256 connections share %d hold slots", len(used))
	}
	// Two pending connections, each with its data held: both delivered.
	r := newFxRig(t, 1024, 64)
	proxyOn()(t, r)
	for _, port := range []uint16{40000, 40001} {
		ck := testSYNProxy().Cookie(fxClient.As4(), fxVIPNAT.As4(), port, 80, spISN, 0, 3)
		for _, f := range [][]byte{spSeg(t, ts.ACK, spISN+1, ck+1, 0, fxPort(port)), spSeg(t, ts.ACK|ts.PSH, spISN+1, ck+1, 10, fxPort(port))} {
			if v, _, _ := r.run(f, 256); v != VerdictForward && v != VerdictHeld {
				t.Fatalf("port %d: verdict %d", port, v)
			}
		}
	}
	for _, port := range []uint16{40000, 40001} {
		tcp := ts.TCP(8080, port, ts.SYN|ts.ACK)
		tcp.Seq, tcp.Ack = spSrvISN, spISN+1
		f := ts.Build(t, ts.Eth(fxMAC(fxRSNAT), fxDirMAC), ipHeaderFrom(fxRSNAT, fxClient, true), tcp)
		if _, _, second := r.run(f, 256); second == nil {
			t.Fatalf("port %d: the held data was not sent", port)
		}
	}
}
