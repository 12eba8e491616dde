package xdpprog

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	vip6        = netip.MustParseAddr("2001:2:0:1::10")
	otherVIP6   = netip.MustParseAddr("2001:2:0:1::11")
	client6     = netip.MustParseAddr("2001:2::1")
	directorIP6 = netip.MustParseAddr("2001:2:0:2::1")
	realIP6     = netip.MustParseAddr("2001:2:0:2::2")
)

func loadTestDecap46(t *testing.T, vips ...netip.Addr) *Decap46 {
	t.Helper()
	if vips == nil {
		vips = []netip.Addr{vip, vip6}
	}
	d, err := LoadDecap46(vips)
	if err != nil {
		t.Fatalf("LoadDecap46: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// inner6Packet is a client's IPv6 TCP segment to dst, without Ethernet.
func inner6Packet(t testing.TB, dst netip.Addr) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 61, NextHeader: layers.IPProtocolTCP, TrafficClass: 0x20,
		SrcIP: client6.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, tcp, gopacket.Payload("hello"))
}

// tunnel wraps inner in an outer header as the director sends it: IPv4
// (protocol 4 or 41) or IPv6 (next header 4 or 41), chosen by outer6 and
// the inner packet's version.
func tunnel(t testing.TB, outer6 bool, inner []byte) []byte {
	proto := layers.IPProtocolIPv4
	if inner[0]>>4 == 6 {
		proto = layers.IPProtocolIPv6
	}
	eth := &layers.Ethernet{SrcMAC: macDirector, DstMAC: macClient}
	if outer6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		return serialize(t, eth, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: directorIP6.AsSlice(), DstIP: realIP6.AsSlice()}, gopacket.Payload(inner))
	}
	eth.EthernetType = layers.EthernetTypeIPv4
	return serialize(t, eth, &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto,
		SrcIP: directorIP.AsSlice(), DstIP: realIP.AsSlice()}, gopacket.Payload(inner))
}

// stripped is what the real server's stack must see: the tunnel frame's
// Ethernet addresses, the inner packet's ethertype, the inner packet.
func stripped(frame, inner []byte) []byte {
	out := append([]byte(nil), frame[:12]...)
	if inner[0]>>4 == 6 {
		out = append(out, 0x86, 0xdd)
	} else {
		out = append(out, 0x08, 0x00)
	}
	return append(out, inner...)
}

// innerPacket is the client's packet as the director received it, without
// its Ethernet header: what VS/TUN carries inside the outer header.
func innerPacket(t *testing.T, spec frameSpec) []byte {
	return buildFrame(t, spec)[ethLen:]
}

func TestDecap46Verdicts(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap46(t)
	in4 := innerPacket(t, frameSpec{dstPort: 80})
	in6 := inner6Packet(t, vip6)
	ipipOpts := ipipFrame(t, in4, true)
	frag4 := tunnel(t, false, in6)
	frag4[ethLen+ipOffFrag] |= 0x20 // MF
	frag6 := tunnel(t, true, in6)
	frag6[ethLen+ip6OffNext] = ipProtoFrag6
	badOuter6 := tunnel(t, true, in6)
	badOuter6[ethLen] = 0x46
	badInner4 := ipipFrame(t, append([]byte{0x65}, in4[1:]...), false)
	badIHL := tunnel(t, false, in4)
	badIHL[ethLen] = 0x43
	fixIPv4Checksum(badIHL[ethLen : ethLen+ipv4MinLen])
	for _, tc := range []struct {
		name string
		in   []byte
		out  []byte // nil: untouched
		want Decap46Stats
	}{
		{"ipip", tunnel(t, false, in4), stripped(ipipOpts, in4), Decap46Stats{IPIP: 1}},
		{"ipip with outer options", ipipOpts, stripped(ipipOpts, in4), Decap46Stats{IPIP: 1}},
		{"6in4", tunnel(t, false, in6), stripped(ipipOpts, in6), Decap46Stats{SixInFour: 1}},
		{"6in6", tunnel(t, true, in6), stripped(ipipOpts, in6), Decap46Stats{SixInSix: 1}},
		{"4in6", tunnel(t, true, in4), stripped(ipipOpts, in4), Decap46Stats{FourInSix: 1}},
		{"6in6 to non-vip", tunnel(t, true, inner6Packet(t, otherVIP6)), nil, Decap46Stats{PassNotVIP: 1}},
		{"6in4 to non-vip", tunnel(t, false, inner6Packet(t, otherVIP6)), nil, Decap46Stats{PassNotVIP: 1}},
		{"4in6 to non-vip", tunnel(t, true, innerPacket(t, frameSpec{dst: otherAddr, dstPort: 80})), nil, Decap46Stats{PassNotVIP: 1}},
		{"ipip to non-vip", tunnel(t, false, innerPacket(t, frameSpec{dst: otherAddr, dstPort: 80})), nil, Decap46Stats{PassNotVIP: 1}},
		{"plain ipv6", ipv6Frame(t), nil, Decap46Stats{PassNotTunnel: 1}},
		{"plain ipv4", buildFrame(t, frameSpec{dstPort: 80}), nil, Decap46Stats{PassNotTunnel: 1}},
		{"arp", arpFrame(t), nil, Decap46Stats{PassNotTunnel: 1}},
		{"vlan ipip", buildFrame(t, frameSpec{vlan: 5, proto: layers.IPProtocolIPv4}), nil, Decap46Stats{PassNotTunnel: 1}},
		{"outer ipv4 fragment", frag4, nil, Decap46Stats{PassFragment: 1}},
		{"outer ipv6 fragment header", frag6, nil, Decap46Stats{PassFragment: 1}},
		{"outer ipv6 version 4", badOuter6, nil, Decap46Stats{PassBadHeader: 1}},
		{"ipip carrying version 6", badInner4, nil, Decap46Stats{PassBadHeader: 1}},
		{"outer ipv4 ihl 3", badIHL, nil, Decap46Stats{PassBadHeader: 1}},
		{"protocol 41 carrying ipv4", tunnel(t, false, in4), nil, Decap46Stats{PassBadHeader: 1}},
		{"next header 4 carrying ipv6", tunnel(t, true, in6), nil, Decap46Stats{PassBadHeader: 1}},
	} {
		if strings.HasPrefix(tc.name, "protocol 41") {
			tc.in[ethLen+ipOffProto] = ipProtoIPv6
			fixIPv4Checksum(tc.in[ethLen : ethLen+ipv4MinLen])
		}
		if strings.HasPrefix(tc.name, "next header 4") {
			tc.in[ethLen+ip6OffNext] = ipProtoIPIP
		}
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			want := tc.out
			if want == nil {
				want = tc.in
			}
			tc.want.Total = 1
			before := decap46Stats(t, d)
			verdict, out := runXDP(t, d.program(), tc.in)
			checkVerdict(t, verdict, xdpPass)
			checkBytes(t, out, want)
			if got := decap46Stats(t, d).minus(before); got != tc.want {
				t.Errorf("counter delta %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecap46OutputParses decodes each stripped frame with gopacket: it must
// be the client's packet to the VIP, of the inner family.
func TestDecap46OutputParses(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap46(t)
	for _, outer6 := range []bool{false, true} {
		_, out := runXDP(t, d.program(), tunnel(t, outer6, inner6Packet(t, vip6)))
		p := decodeFrame(t, out)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tcp == nil || !ip.DstIP.Equal(vip6.AsSlice()) || !ip.SrcIP.Equal(client6.AsSlice()) || tcp.DstPort != 80 || ip.HopLimit != 61 {
			t.Errorf("outer6 %v: stripped frame is not the client's IPv6 segment: %v", outer6, p)
		}
		_, out = runXDP(t, d.program(), tunnel(t, outer6, innerPacket(t, frameSpec{dstPort: 80})))
		p = decodeFrame(t, out)
		ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip4 == nil || !ip4.DstIP.Equal(vip.AsSlice()) || ipv4HeaderSum(out[ethLen:ethLen+20]) != 0xffff {
			t.Errorf("outer6 %v: stripped frame is not the client's IPv4 packet: %v", outer6, p)
		}
	}
}

// TestDecap46Truncated cuts each tunnel at every length up to the end of
// its inner header: none may be modified.
func TestDecap46Truncated(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap46(t)
	in4 := innerPacket(t, frameSpec{dstPort: 80})
	in6 := inner6Packet(t, vip6)
	for _, c := range []struct {
		name  string
		frame []byte
		end   int
	}{
		{"6in4", tunnel(t, false, in6), ethLen + ipv4MinLen + ipv6Len},
		{"6in6", tunnel(t, true, in6), ethLen + 2*ipv6Len},
		{"4in6", tunnel(t, true, in4), ethLen + ipv6Len + ipv4MinLen},
		{"ipip", tunnel(t, false, in4), ethLen + 2*ipv4MinLen},
	} {
		for n := ethLen; n < c.end; n++ {
			in := c.frame[:n:n]
			before := decap46Stats(t, d)
			verdict, out := runXDP(t, d.program(), in)
			if got := decap46Stats(t, d).minus(before); verdict != xdpPass || got != (Decap46Stats{Total: 1, PassTruncated: 1}) {
				t.Errorf("%s length %d: verdict %s, counters %+v; want XDP_PASS and truncated", c.name, n, verdictName(verdict), got)
			}
			checkBytes(t, out, in)
		}
	}
}

// TestDecap46OneFamily: with IPv4 VIPs only, IPv6 tunnels are not for this
// server, and the other way round.
func TestDecap46OneFamily(t *testing.T) {
	testsupport.RequirePrivileged(t)
	only4 := loadTestDecap46(t, vip)
	only6 := loadTestDecap46(t, vip6)
	in6 := tunnel(t, true, inner6Packet(t, vip6))
	in4 := tunnel(t, true, innerPacket(t, frameSpec{dstPort: 80}))
	for _, c := range []struct {
		name string
		d    *Decap46
		in   []byte
		want Decap46Stats
	}{
		{"ipv4 vips, 6in6", only4, in6, Decap46Stats{Total: 1, PassNotVIP: 1}},
		{"ipv4 vips, 4in6", only4, in4, Decap46Stats{Total: 1, FourInSix: 1}},
		{"ipv6 vips, 4in6", only6, in4, Decap46Stats{Total: 1, PassNotVIP: 1}},
		{"ipv6 vips, 6in6", only6, in6, Decap46Stats{Total: 1, SixInSix: 1}},
	} {
		before := decap46Stats(t, c.d)
		runXDP(t, c.d.program(), c.in)
		if got := decap46Stats(t, c.d).minus(before); got != c.want {
			t.Errorf("%s: counters %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestDecap46RejectsBadInput(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, tc := range []struct {
		name string
		vips []netip.Addr
		want string
	}{
		{"none", nil, "need at least one"},
		{"invalid", []netip.Addr{vip6, {}}, "vip 1: address missing"},
	} {
		if _, err := LoadDecap46(tc.vips); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func fixIPv4Checksum(h []byte) {
	h[10], h[11] = 0, 0
	s := ^ipv4HeaderSum(h)
	h[10], h[11] = byte(s>>8), byte(s)
}

func decap46Stats(t testing.TB, d *Decap46) Decap46Stats {
	t.Helper()
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s Decap46Stats) minus(o Decap46Stats) Decap46Stats {
	return Decap46Stats{
		Total: s.Total - o.Total, IPIP: s.IPIP - o.IPIP, SixInFour: s.SixInFour - o.SixInFour,
		SixInSix: s.SixInSix - o.SixInSix, FourInSix: s.FourInSix - o.FourInSix,
		PassNotTunnel: s.PassNotTunnel - o.PassNotTunnel, PassNotVIP: s.PassNotVIP - o.PassNotVIP,
		PassTruncated: s.PassTruncated - o.PassTruncated, PassBadHeader: s.PassBadHeader - o.PassBadHeader,
		PassFragment: s.PassFragment - o.PassFragment, PassAdjustFailed: s.PassAdjustFailed - o.PassAdjustFailed,
	}
}
