package dataplane

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	ts "github.com/afvs/afvs/internal/testsupport"
	c "github.com/afvs/afvs/internal/testsupport/checker"
)

// kernelRecorder is a KernelSender that keeps what it is given.
type kernelRecorder struct {
	pkts   [][]byte
	refuse bool
}

func (k *kernelRecorder) SendIP(pkt []byte) bool {
	if k.refuse {
		return false
	}
	k.pkts = append(k.pkts, append([]byte(nil), pkt...))
	return true
}

var fxRouterTUN = netip.MustParseAddr("198.18.0.254")

// tunSpec describes an ICMP error from a router between the director and
// the TUN real server about the director's IPIP packet carrying the
// client's TCP segment to 198.19.0.2:80; zero fields are the usual.
type tunSpec struct {
	typ, code uint8
	mtu       uint16 // default 1400
	outerSrc  netip.Addr
	outerDst  netip.Addr
	sport     uint16 // the client's port; default 40000
	noDF      bool
}

func tunICMP(t testing.TB, s tunSpec) []byte {
	t.Helper()
	if s.typ == 0 {
		s.typ, s.code = 3, 4
	}
	if s.mtu == 0 {
		s.mtu = 1400
	}
	if !s.outerSrc.IsValid() {
		s.outerSrc = fxDir
	}
	if !s.outerDst.IsValid() {
		s.outerDst = fxRSTUN
	}
	if s.sport == 0 {
		s.sport = 40000
	}
	inner := ipPacket(t, ipHeaderFrom(fxClient, fxVIPTUN, !s.noDF), ts.TCP(s.sport, 80, ts.ACK), ts.Payload(1400))
	outer := ts.Build(t, &layers.IPv4{Version: 4, IHL: 5, TTL: 63, Protocol: layers.IPProtocolIPv4, Flags: layers.IPv4DontFragment,
		SrcIP: s.outerSrc.AsSlice(), DstIP: s.outerDst.AsSlice(), Length: uint16(20 + len(inner))})
	quoted := append(outer[:20:20], inner[:28]...)
	return ts.Build(t, ts.Eth(fxMAC(fxRouterTUN), fxDirMAC), ipHeaderFrom(fxRouterTUN, fxDir, false),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.typ, s.code), Seq: s.mtu}, ts.RawPayload(quoted))
}

// withKernel gives the processor a kernel recorder, then runs more.
func withKernel(k KernelSender, more ...func(testing.TB, *fxRig)) func(testing.TB, *fxRig) {
	return func(t testing.TB, r *fxRig) {
		r.p.SetKernelSender(k)
		for _, m := range more {
			m(t, r)
		}
	}
}

func icmpTunFixtures(t testing.TB) []fixture {
	k := &kernelRecorder{}
	open := sendFirst(seg(t, fxVIPTUN, 80))
	return []fixture{
		{name: "ICMP about the director's IPIP packet: answered through the kernel", prep: withKernel(k, open), in: tunICMP(t, tunSpec{}),
			verdict: VerdictDrop, drop: noDrop},
		{name: "ICMP about the director's IPIP packet: no connection", prep: withKernel(k), in: tunICMP(t, tunSpec{}),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP about an IPIP packet another host sent", prep: withKernel(k, open), in: tunICMP(t, tunSpec{outerSrc: fxRSDR}),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP about an IPIP packet to another real server", prep: withKernel(k, open), in: tunICMP(t, tunSpec{outerDst: fxRSDR}),
			verdict: VerdictDrop, drop: DropICMPUnmatched},
		{name: "ICMP fragmentation needed about a tunnelled packet without DF", prep: withKernel(k, sendFirst(seg(t, fxVIPTUN, 80, noDF))),
			in: tunICMP(t, tunSpec{noDF: true}), verdict: VerdictDrop, drop: DropICMPTunnelNoDF},
		{name: "ICMP about the director's IPIP packet: the kernel refuses", prep: withKernel(&kernelRecorder{refuse: true}, open), in: tunICMP(t, tunSpec{}),
			verdict: VerdictDrop, drop: DropNoEgress},
	}
}

// TestICMPTunnelAnswer: the answer the kernel gets is ip_vs_in_icmp's
// icmp_send: from the VIP to the client, the same type and code, the MTU
// less the outer header for a fragmentation-needed, quoting the client's
// packet; time exceeded keeps its code; the answers count out; the
// director's ICMP rate limit holds them back.
func TestICMPTunnelAnswer(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint8
		mtu       uint16
		wantRest  uint16
	}{{3, 4, 1400, 1380}, {3, 4, 80, 80}, {11, 0, 0, 1400}, {3, 1, 0, 1400}} { // other errors keep their second word
		r := newFxRig(t, 1024, 64)
		k := &kernelRecorder{}
		withKernel(k, sendFirst(seg(t, fxVIPTUN, 80)))(t, r)
		v, _, _ := r.run(tunICMP(t, tunSpec{typ: tc.typ, code: tc.code, mtu: tc.mtu}), 256)
		if v != VerdictDrop || len(k.pkts) != 1 {
			t.Fatalf("%d/%d: verdict %d, %d packets to the kernel", tc.typ, tc.code, v, len(k.pkts))
		}
		c.IPv4Packet(t, k.pkts[0], c.SrcAddr(fxVIPTUN), c.DstAddr(fxClient), c.TTL(64),
			c.ICMPv4(c.ICMPType(tc.typ, tc.code), c.Embedded(c.SrcAddr(fxClient), c.DstAddr(fxVIPTUN), c.SrcPort(40000), c.DstPort(80))))
		pkt := gopacket.NewPacket(k.pkts[0], layers.LayerTypeIPv4, gopacket.Default)
		ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ic == nil || ic.Seq != tc.wantRest || len(ic.Payload) != 28 {
			t.Fatalf("%d/%d: ICMP %+v, want rest %d and the client's 28 quoted bytes", tc.typ, tc.code, ic, tc.wantRest)
		}
		var tot Totals
		tot.Add(r.c)
		if tot.ICMPSent != 1 {
			t.Errorf("icmp_sent %d", tot.ICMPSent)
		}
		svc, _ := r.snap.ServiceByKey(r.snap.Services[2].Key)
		if r.c.Service(svc.ID).OutPkts != 1 || r.c.Service(svc.ID).OutBytes != uint64(len(k.pkts[0])) {
			t.Errorf("%s: out %+v", svc.Key, r.c.Service(svc.ID))
		}
	}
	// The rate limit: one token, spent.
	r := newFxRig(t, 1024, 64)
	k := &kernelRecorder{}
	withKernel(k, sendFirst(seg(t, fxVIPTUN, 80)))(t, r)
	l, err := NewICMPLimiter(1, 1, r.clock)
	if err != nil {
		t.Fatal(err)
	}
	l.Allow(fxClient.As4())
	r.p.SetICMPLimiter(l)
	if r.run(tunICMP(t, tunSpec{}), 256); len(k.pkts) != 0 || r.c.Drops[DropICMPLimited].Load() != 1 {
		t.Fatalf("rate-limited: %d packets sent, %d counted limited", len(k.pkts), r.c.Drops[DropICMPLimited].Load())
	}
}

// TestICMPTunnelNoAllocs: answering one allocates nothing.
func TestICMPTunnelNoAllocs(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	withKernel(nopKernel{}, sendFirst(seg(t, fxVIPTUN, 80)))(t, r)
	f := tunICMP(t, tunSpec{})
	buf := make([]byte, maxFrame)
	if n := testing.AllocsPerRun(200, func() {
		copy(buf[256:], f)
		r.p.Process(r.snap, buf, 256, len(f))
	}); n != 0 {
		t.Fatalf("%v allocations per answer", n)
	}
	if r.c.ICMPSent.Load() == 0 {
		t.Fatal("nothing answered")
	}
}

type nopKernel struct{}

func (nopKernel) SendIP([]byte) bool { return true }
