package xdpprog

import (
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
		{"arp with socket", arpFrame(t), true, RedirectAllStats{PassNotIPv4: 1}, xdpPass},
		{"ipv6 with socket", ipv6Frame(t), true, RedirectAllStats{PassNotIPv4: 1}, xdpPass},
		{"vlan ipv4 with socket", buildFrame(t, frameSpec{vlan: 3, dstPort: 80}), true, RedirectAllStats{PassNotIPv4: 1}, xdpPass},
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
				PassNotIPv4:  after.PassNotIPv4 - before.PassNotIPv4,
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
