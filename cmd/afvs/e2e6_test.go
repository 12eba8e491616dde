package main

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// TestEndToEndIPv6DR: real HTTP over IPv6 through afvs by VS/DR. The
// service, an IPv6 firewall-mark service (the lab's mark group holds TCP
// to the VIP's port 80), is added with afvsadm -6 while afvs runs; the
// real servers hold
// the VIP on lo as a /128 and never answer neighbour discovery for it.
// After the neighbour tables of every namespace are flushed mid-test,
// connections work again: neighbour discovery passes through the
// director's steering program to the kernels.
//
// In the two-interface layout the director receives on eth0 and sends on
// eth1, whose IPv6 neighbours it resolves there.
func TestEndToEndIPv6DR(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two_interfaces=%v", two), func(t *testing.T) { testIPv6DR(t, two) })
	}
}

func testIPv6DR(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", IPv6: true, Weights: []int{1, 2, 3}, TwoInterfaces: two})
	mark := fmt.Sprint(testnet.Mark6)
	mustAfvsadm(t, lab, "-A", "-f", mark, "-6", "-s", "wrr")
	for i, a := range lab.RealAddrs6 {
		mustAfvsadm(t, lab, "-a", "-f", mark, "-6", "-r", netip.AddrPortFrom(a, 80).String(), "-g", "-w", fmt.Sprint(lab.Opt.Weights[i]))
	}
	list := mustAfvsadm(t, lab, "-L", "-n")
	if !strings.Contains(list, "FWM  "+mark+" IPv6 wrr") || !strings.Contains(list, "-> ["+lab.RealAddrs6[2].String()+"]:80") {
		t.Fatalf("afvsadm -L -n:\n%s", list)
	}
	const n = 300
	get := func(what string) {
		t.Helper()
		res := lab.GetFrom(testnet.VIP6, n, 6)
		if res.Failed != 0 || res.OK != n {
			t.Fatalf("%s: %d of %d requests failed: %v", what, res.Failed, n, res.Errors)
		}
		for i, name := range lab.Names {
			want := float64(n) * float64(lab.Opt.Weights[i]) / 6
			if got := float64(res.By[name]); math.Abs(got-want) > 0.02*n {
				t.Errorf("%s: %s (weight %d) answered %v, want %v ± %v", what, name, lab.Opt.Weights[i], got, want, 0.02*n)
			}
		}
	}
	get("first round")
	flushNeighbours(t, lab)
	get("after the neighbour tables were flushed")

	st := quiesced(t, lab)
	svcs, err := lab.Control().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Stats.Conns != 2*n {
		t.Fatalf("services %+v: want one with %d connections", svcs, 2*n)
	}
	// Every packet counted in went out, but for those dropped while a
	// flushed neighbour resolved again (their SYNs were retransmitted).
	if sent := svcs[0].Stats.InPkts - st.Drops["neighbor_unresolved"]; st.TX == 0 || st.TX != sent {
		t.Errorf("director TX %d frames, counted %d packets in; drops %v", st.TX, svcs[0].Stats.InPkts, st.Drops)
	}
	// The real servers hold the VIP on lo and do not answer neighbour
	// solicitations for it on eth0 (ndisc_recv_ns looks the target up on
	// the receiving interface only): with the VIP made on-link at the
	// client, its solicitations go unanswered and no real server's MAC
	// is learnt. (In the two-interface layout no real server is on the
	// client's eth0 link.)
	if two {
		return
	}
	if err := lab.Client.IP("-6", "route", "replace", testnet.VIP6.String()+"/128", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	var out string
	for i := 0; i < 3; i++ {
		_ = lab.Client.Do(func() error {
			c, err := net.Dial("udp", netip.AddrPortFrom(testnet.VIP6, 9).String())
			if err == nil {
				_, _ = c.Write([]byte("x"))
				c.Close()
			}
			return nil
		})
		time.Sleep(time.Second)
		b, err := lab.Client.Command("ip", "-6", "neigh", "show", testnet.VIP6.String(), "dev", "eth0").Output()
		if err != nil {
			t.Fatal(err)
		}
		out = string(b)
		if strings.Contains(out, "lladdr") {
			t.Fatalf("a real server answered neighbour discovery for the VIP: %s", out)
		}
	}
	if !strings.Contains(out, "FAILED") && !strings.Contains(out, "INCOMPLETE") {
		t.Errorf("the client never solicited the on-link VIP: neighbour entry %q", out)
	}
}

// flushNeighbours flushes the neighbour tables (both families) of every
// namespace of lab.
func flushNeighbours(t *testing.T, lab *testnet.Lab) {
	t.Helper()
	for _, ns := range append([]*testnet.NS{lab.Client, lab.Director}, lab.Reals...) {
		for _, fam := range []string{"-4", "-6"} {
			if err := ns.IP(fam, "neigh", "flush", "all"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestEndToEndIPv6Tunnels: real HTTP through afvs by VS/TUN in every
// family IPVS tunnels: IPv6 in IPv6, then, after afvsadm swaps the real
// servers while afvs runs, IPv6 in IPv4 to the same servers' IPv4
// addresses, and IPv4 in IPv6 for the IPv4 VIP. The real servers
// decapsulate all three with afvs's XDP decapsulator.
//
// In the two-interface layout the tunnels leave by eth1, from its own
// addresses.
func TestEndToEndIPv6Tunnels(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two_interfaces=%v", two), func(t *testing.T) { testIPv6Tunnels(t, two) })
	}
}

func testIPv6Tunnels(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "tun", IPv6: true, Weights: []int{1, 1, 1}, TwoInterfaces: two})
	vip6 := netip.AddrPortFrom(testnet.VIP6, 80).String()
	vip4 := netip.AddrPortFrom(lab.VIP, 80).String()
	mustAfvsadm(t, lab, "-A", "-t", vip6, "-s", "rr")
	for _, a := range lab.RealAddrs6 {
		mustAfvsadm(t, lab, "-a", "-t", vip6, "-r", netip.AddrPortFrom(a, 80).String(), "-i")
	}
	const n = 90
	get := func(what string, vip netip.Addr) {
		t.Helper()
		res := lab.GetFrom(vip, n, 3)
		if res.Failed != 0 || res.OK != n {
			t.Fatalf("%s: %d of %d requests failed: %v", what, res.Failed, n, res.Errors)
		}
		for _, name := range lab.Names {
			if got := res.By[name]; got < n/3-3 || got > n/3+3 {
				t.Errorf("%s: %s answered %d of %d (rr over 3)", what, name, got, n)
			}
		}
	}
	get("IPv6 in IPv6", testnet.VIP6)
	flushNeighbours(t, lab)
	get("IPv6 in IPv6 after the neighbour tables were flushed", testnet.VIP6)

	for i, a := range lab.RealAddrs6 {
		mustAfvsadm(t, lab, "-d", "-t", vip6, "-r", netip.AddrPortFrom(a, 80).String())
		mustAfvsadm(t, lab, "-a", "-t", vip6, "-r", netip.AddrPortFrom(lab.RealAddrs[i], 80).String(), "-i")
	}
	get("IPv6 in IPv4", testnet.VIP6)

	mustAfvsadm(t, lab, "-A", "-t", vip4, "-s", "rr")
	for _, a := range lab.RealAddrs6 {
		mustAfvsadm(t, lab, "-a", "-t", vip4, "-r", netip.AddrPortFrom(a, 80).String(), "-i")
	}
	get("IPv4 in IPv6", lab.VIP)
	// The connection listing names the IPv6 real servers of the IPv4
	// VIP's connections.
	conns, seen := mustAfvsadm(t, lab, "-L", "-c", "-n"), 0
	for _, line := range strings.Split(conns, "\n") {
		if !strings.Contains(line, " "+vip4+" ") {
			continue
		}
		seen++
		if !strings.Contains(line, " ["+lab.RealAddrs6[0].String()) && !strings.Contains(line, " ["+lab.RealAddrs6[1].String()) && !strings.Contains(line, " ["+lab.RealAddrs6[2].String()) {
			t.Errorf("afvsadm -L -c -n: a connection to %s without its IPv6 real server: %q", vip4, line)
		}
	}
	if seen == 0 {
		t.Errorf("afvsadm -L -c -n lists no connection to %s:\n%s", vip4, conns)
	}

	st := quiesced(t, lab)
	// neighbor_unresolved may count SYNs sent while a flushed neighbour
	// resolved again; nothing else may drop.
	for _, why := range []string{"no_egress", "no_headroom", "unsupported_forwarding", "frag_needed", "too_big", "no_service", "no_connection"} {
		if st.Drops[why] != 0 {
			t.Errorf("drops %s: %d", why, st.Drops[why])
		}
	}
}
