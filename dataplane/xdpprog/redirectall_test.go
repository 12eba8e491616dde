package xdpprog

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket/layers"
)

func TestRedirectAll(t *testing.T) {
	testsupport.RequirePrivileged(t)
	r, err := LoadRedirectAll(2)
	if err != nil {
		t.Fatalf("LoadRedirectAll: %v", err)
	}
	defer r.Close()
	for _, step := range []struct {
		name   string
		frame  []byte
		socket bool
		want   RedirectAllStats
		out    uint32
	}{
		{"ipv4 without socket", buildFrame(t, frameSpec{dst: otherAddr, dstPort: 9}), false, RedirectAllStats{PassNoSocket: 1}, xdpPass},
		{"icmp with socket", buildFrame(t, frameSpec{proto: layers.IPProtocolICMPv4}), true, RedirectAllStats{Redirected: 1}, xdpRedirect},
		{"arp with socket", arpFrame(t), true, RedirectAllStats{PassOther: 1}, xdpPass},
		{"ipv6 tcp with socket", ipv6Frame(t), true, RedirectAllStats{PassOther: 1}, xdpPass},
		{"ipv6 udp with socket", ipv6UDPFrame(t), true, RedirectAllStats{Redirected: 1}, xdpRedirect},
		{"ipv6 udp without socket", ipv6UDPFrame(t), false, RedirectAllStats{PassNoSocket: 1}, xdpPass},
		{"ipv6 neighbour solicitation with socket", ipv6NSFrame(t), true, RedirectAllStats{PassOther: 1}, xdpPass},
		{"ipv6 truncated with socket", ipv6UDPFrame(t)[:ethLen+ipv6Len-1], true, RedirectAllStats{PassOther: 1}, xdpPass},
		{"vlan ipv4 with socket", buildFrame(t, frameSpec{vlan: 3, dstPort: 80}), true, RedirectAllStats{PassOther: 1}, xdpPass},
	} {
		t.Run(strings.ReplaceAll(step.name, " ", "_"), func(t *testing.T) {
			if step.socket {
				if err := r.RegisterSocket(0, xskSocket(t)); err != nil {
					t.Fatal(err)
				}
				defer r.UnregisterSocket(0)
			}
			before, err := r.Stats()
			if err != nil {
				t.Fatal(err)
			}
			verdict, out := runXDP(t, r.program(), step.frame)
			checkVerdict(t, verdict, step.out)
			checkBytes(t, out, step.frame)
			after, err := r.Stats()
			if err != nil {
				t.Fatal(err)
			}
			step.want.Total = 1
			got := RedirectAllStats{
				Total:        after.Total - before.Total,
				Redirected:   after.Redirected - before.Redirected,
				PassOther:    after.PassOther - before.PassOther,
				PassNoSocket: after.PassNoSocket - before.PassNoSocket,
			}
			if got != step.want {
				t.Errorf("counter delta %+v, want %+v", got, step.want)
			}
		})
	}
	if _, err := LoadRedirectAll(0); err == nil || !strings.Contains(err.Error(), "max queues 0") {
		t.Errorf("LoadRedirectAll(0): error %v, want max queues error", err)
	}
}

// ipv6UDPFrame is a UDP datagram over IPv6, as the benchmark's generator
// sends them.
func ipv6UDPFrame(t testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: netip.MustParseAddr("2001:2::2").AsSlice(), DstIP: netip.MustParseAddr("2001:2:0:100::1").AsSlice()}
	udp := &layers.UDP{SrcPort: 1024, DstPort: 9}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv6},
		ip, udp)
}

// ipv6NSFrame is a neighbour solicitation, which must stay with the
// kernel.
func ipv6NSFrame(t testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: netip.MustParseAddr("2001:2::2").AsSlice(), DstIP: netip.MustParseAddr("ff02::1:ff00:1").AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: netip.MustParseAddr("2001:2::1").AsSlice()}
	return serialize(t,
		&layers.Ethernet{SrcMAC: macClient, DstMAC: macDirector, EthernetType: layers.EthernetTypeIPv6},
		ip, icmp, ns)
}
