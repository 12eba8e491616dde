package xdpprog

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket/layers"
)

func loadTestDecap(t *testing.T) *Decap {
	t.Helper()
	d, err := LoadDecap([]netip.Addr{vip, vipAllPorts})
	if err != nil {
		t.Fatalf("LoadDecap: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// innerPacket is the client's packet as the director received it, without
// its Ethernet header: what VS/TUN carries inside the outer IPv4 header.
func innerPacket(t *testing.T, spec frameSpec) []byte {
	return buildFrame(t, spec)[ethLen:]
}

func TestDecapVerdicts(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap(t)
	inner := innerPacket(t, frameSpec{dstPort: 80})
	plain := ipipFrame(t, inner, false)
	withOpts := ipipFrame(t, inner, true)
	if withOpts[ethLen] != 0x46 {
		t.Fatalf("fixture: outer header with options has version/IHL %#x, want 0x46", withOpts[ethLen])
	}
	// stripped is what the real server's stack must see: the original
	// Ethernet header followed by the client's packet, byte for byte.
	stripped := append(append([]byte(nil), plain[:ethLen]...), inner...)

	fragmented := ipipFrame(t, inner, false)
	fragmented[ethLen+ipOffFrag] |= 0x20 // MF
	badInner := ipipFrame(t, append([]byte{0x65}, inner[1:]...), false)
	badOuter := append([]byte(nil), plain...)
	badOuter[ethLen] = 0x43

	for _, tc := range []struct {
		name string
		in   []byte
		out  []byte // nil: untouched
		want DecapStats
	}{
		{"ipip to vip", plain, stripped, DecapStats{Decapsulated: 1}},
		{"ipip with outer options", withOpts, stripped, DecapStats{Decapsulated: 1}},
		{"ipip udp to second vip", ipipFrame(t, innerPacket(t, frameSpec{dst: vipAllPorts, proto: layers.IPProtocolUDP, dstPort: 9}), false), nil, DecapStats{Decapsulated: 1}},
		{"ipip to non-vip", ipipFrame(t, innerPacket(t, frameSpec{dst: otherAddr, dstPort: 80}), false), nil, DecapStats{PassNotVIP: 1}},
		{"plain tcp to vip", buildFrame(t, frameSpec{dstPort: 80}), nil, DecapStats{PassNotIPIP: 1}},
		{"arp", arpFrame(t), nil, DecapStats{PassNotIPIP: 1}},
		{"ipv6", ipv6Frame(t), nil, DecapStats{PassNotIPIP: 1}},
		{"outer fragment", fragmented, nil, DecapStats{PassFragment: 1}},
		{"inner version 6", badInner, nil, DecapStats{PassBadHeader: 1}},
		{"outer ihl 3", badOuter, nil, DecapStats{PassBadHeader: 1}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			want := tc.out
			if want == nil && tc.want.Decapsulated == 1 {
				// Derive the expectation independently: drop the outer
				// header as gopacket sees it.
				ihl := int(tc.in[ethLen]&0x0f) * 4
				want = append(append([]byte(nil), tc.in[:ethLen]...), tc.in[ethLen+ihl:]...)
			}
			if want == nil {
				want = tc.in
			}
			tc.want.Total = 1
			before := decapStats(t, d)
			verdict, out := runXDP(t, d.program(), tc.in)
			checkVerdict(t, verdict, xdpPass)
			checkBytes(t, out, want)
			if got := decapStats(t, d).minus(before); got != tc.want {
				t.Errorf("counter delta %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDecapOutputParses checks the stripped frame with gopacket: it must
// decode as Ethernet/IPv4/TCP with the client's addresses and a valid
// IPv4 header, which is what the real server's stack will check.
func TestDecapOutputParses(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap(t)
	_, out := runXDP(t, d.program(), ipipFrame(t, innerPacket(t, frameSpec{dstPort: 80}), true))
	p := decodeFrame(t, out)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("stripped frame does not decode as IPv4/TCP: %v", p)
	}
	if got := netip.AddrFrom4([4]byte(ip.DstIP.To4())); got != vip {
		t.Errorf("inner destination %s, want %s", got, vip)
	}
	if got := netip.AddrFrom4([4]byte(ip.SrcIP.To4())); got != clientAddr {
		t.Errorf("inner source %s, want %s", got, clientAddr)
	}
	if tcp.DstPort != 80 {
		t.Errorf("tcp destination port %d, want 80", tcp.DstPort)
	}
	if sum := ipv4HeaderSum(out[ethLen : ethLen+int(ip.IHL)*4]); sum != 0xffff {
		t.Errorf("inner ipv4 header checksum does not verify: sum %#x", sum)
	}
}

// TestDecapTruncated cuts an IPIP frame at every length up to the end of
// the inner IPv4 header: no cut may be modified or fail verification.
func TestDecapTruncated(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d := loadTestDecap(t)
	full := ipipFrame(t, innerPacket(t, frameSpec{dstPort: 80}), false)
	end := ethLen + 2*ipv4MinLen
	for n := ethLen; n < end; n++ {
		in := full[:n:n]
		before := decapStats(t, d)
		verdict, out := runXDP(t, d.program(), in)
		got := decapStats(t, d).minus(before)
		if verdict != xdpPass || got != (DecapStats{Total: 1, PassTruncated: 1}) {
			t.Errorf("length %d: verdict %s, counters %+v; want XDP_PASS and truncated", n, verdictName(verdict), got)
		}
		checkBytes(t, out, in)
	}
	verdict, out := runXDP(t, d.program(), full[:end])
	checkVerdict(t, verdict, xdpPass)
	if len(out) != end-ipv4MinLen {
		t.Errorf("inner header only: output %d bytes, want %d", len(out), end-ipv4MinLen)
	}
}

func TestDecapRejectsBadInput(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, tc := range []struct {
		name string
		vips []netip.Addr
		want string
	}{
		{"none", nil, "need at least one"},
		{"ipv6", []netip.Addr{vip, netip.MustParseAddr("2001:2::1")}, "vip 1 (2001:2::1): address must be IPv4"},
		{"invalid", []netip.Addr{{}}, "vip 0"},
	} {
		if _, err := LoadDecap(tc.vips); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func decapStats(t testing.TB, d *Decap) DecapStats {
	t.Helper()
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s DecapStats) minus(o DecapStats) DecapStats {
	return DecapStats{
		Total:            s.Total - o.Total,
		Decapsulated:     s.Decapsulated - o.Decapsulated,
		PassNotIPIP:      s.PassNotIPIP - o.PassNotIPIP,
		PassNotVIP:       s.PassNotVIP - o.PassNotVIP,
		PassTruncated:    s.PassTruncated - o.PassTruncated,
		PassBadHeader:    s.PassBadHeader - o.PassBadHeader,
		PassFragment:     s.PassFragment - o.PassFragment,
		PassAdjustFailed: s.PassAdjustFailed - o.PassAdjustFailed,
	}
}
