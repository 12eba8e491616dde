package nic

import (
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestKernelLookup(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, _ := veth(t, a, b, 3)
	link, err := a.h.LinkByName(la.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.h.LinkSetMTU(link, 1400); err != nil {
		t.Fatal(err)
	}
	addAddr(t, a, la, "198.18.0.1/24")
	addAddr(t, a, la, "198.18.1.1/25")
	addAddr(t, a, la, "2001:2::1/64")
	k := a.kernel(t)

	got, err := k.Lookup(la.name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != la.index || got.Name != la.name || got.MAC != la.mac || got.Kind != "veth" {
		t.Errorf("Lookup(%s) identity = %d %s %x %s, want %d %s %x veth", la.name, got.Index, got.Name, got.MAC, got.Kind, la.index, la.name, la.mac)
	}
	if got.MTU != 1400 {
		t.Errorf("MTU = %d, want 1400", got.MTU)
	}
	if got.RxQueues != 3 {
		t.Errorf("RxQueues = %d, want 3", got.RxQueues)
	}
	if want := netip.MustParseAddr("198.18.0.1"); got.IPv4 != want {
		t.Errorf("IPv4 = %s, want the primary %s", got.IPv4, want)
	}
	for _, p := range []string{"198.18.0.1/24", "198.18.1.1/25", "2001:2::1/64"} {
		if !slices.Contains(got.Addrs, netip.MustParsePrefix(p)) {
			t.Errorf("Addrs %v lack %s", got.Addrs, p)
		}
	}

	// An interface of the host namespace must not be visible through k.
	if _, err := k.Lookup("nosuchif0"); err == nil || !strings.Contains(err.Error(), "lookup interface nosuchif0") {
		t.Errorf("Lookup(nosuchif0) = %v, want an error naming it", err)
	}
	if _, err := k.Lookup("bad/name"); err == nil || !strings.Contains(err.Error(), `"bad/name"`) {
		t.Errorf("Lookup(bad/name) = %v, want an error naming it", err)
	}
}

// TestLookupHostSysfs covers the sysfs queue count, which only applies to
// the namespace sysfs was mounted for.
func TestLookupHostSysfs(t *testing.T) {
	got, err := Lookup("lo")
	if err != nil {
		t.Fatal(err)
	}
	ents, err := filepath.Glob("/sys/class/net/lo/queues/rx-*")
	if err != nil || len(ents) == 0 {
		t.Skipf("sysfs shows no queues for lo (%v): not mounted for this namespace", err)
	}
	if got.RxQueues != len(ents) {
		t.Errorf("Lookup(lo).RxQueues = %d, sysfs has %d", got.RxQueues, len(ents))
	}
	if !slices.Contains(got.Addrs, netip.MustParsePrefix("127.0.0.1/8")) || got.IPv4 != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Lookup(lo) addresses %v, IPv4 %s, want 127.0.0.1/8", got.Addrs, got.IPv4)
	}
	if n, err := countRxQueues("/sys", "lo", got.Index+1000); err == nil {
		t.Errorf("countRxQueues with a wrong ifindex = %d, want an error", n)
	}
}

func TestKernelRoute(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, _ := veth(t, a, b, 1)
	addAddr(t, a, la, "198.18.0.1/24")
	addAddr(t, a, la, "2001:2::1/64")
	gwRoute := &netlink.Route{LinkIndex: la.index, Dst: mustCIDR(t, "198.18.9.0/24"), Gw: net.ParseIP("198.18.0.254")}
	if err := a.h.RouteAdd(gwRoute); err != nil {
		t.Fatal(err)
	}
	mtuRoute := &netlink.Route{LinkIndex: la.index, Dst: mustCIDR(t, "198.19.0.0/16"), Gw: net.ParseIP("198.18.0.253"), MTU: 1300}
	if err := a.h.RouteAdd(mtuRoute); err != nil {
		t.Fatal(err)
	}
	k := a.kernel(t)

	cases := []struct {
		dst, next, src string
		mtu            int
	}{
		{"198.18.0.2", "198.18.0.2", "198.18.0.1", 1500},        // on-link
		{"198.18.9.9", "198.18.0.254", "198.18.0.1", 1500},      // via gateway
		{"198.19.7.7", "198.18.0.253", "198.18.0.1", 1300},      // route MTU metric
		{"2001:2::9", "2001:2::9", "2001:2::1", 1500},           // IPv6 on-link
		{"::ffff:198.18.0.3", "198.18.0.3", "198.18.0.1", 1500}, // v4-mapped input
	}
	for _, tc := range cases {
		hop, err := k.Route(netip.MustParseAddr(tc.dst))
		if err != nil {
			t.Errorf("Route(%s): %v", tc.dst, err)
			continue
		}
		want := Hop{Ifindex: la.index, Dev: la.name, NextHop: netip.MustParseAddr(tc.next), Src: netip.MustParseAddr(tc.src), MTU: tc.mtu}
		if hop != want {
			t.Errorf("Route(%s) = %+v, want %+v", tc.dst, hop, want)
		}
	}
	// The director's own address routes through lo, as a local route.
	if hop, err := k.Route(netip.MustParseAddr("198.18.0.1")); err != nil || !hop.Local || hop.Dev != "lo" {
		t.Errorf("Route(own address) = %+v, %v; want a local hop on lo", hop, err)
	}

	bad := map[string]string{
		"198.20.9.9": "no route to 198.20.9.9",
		"0.0.0.0":    "route to 0.0.0.0: destination must be a unicast address",
		"224.0.0.1":  "route to 224.0.0.1: destination must be a unicast address",
	}
	for dst, want := range bad {
		if _, err := k.Route(netip.MustParseAddr(dst)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Route(%s) = %v, want error containing %q", dst, err, want)
		}
	}
	if _, err := k.Route(netip.Addr{}); err == nil {
		t.Error("Route(zero Addr) succeeded")
	}
}

func TestKernelPlanCPUsVeth(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, _ := veth(t, a, b, 2)
	k := a.kernel(t)
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := k.PlanCPUs(la.name, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "no per-queue irq (veth): spread over allowed cpus " + formatCPUList(allowed)
	for q, as := range plan {
		if as.Queue != q || as.CPU != allowed[q%len(allowed)] || as.Reason != want {
			t.Errorf("queue %d: %+v, want cpu %d reason %q", q, as, allowed[q%len(allowed)], want)
		}
	}
	if _, err := k.PlanCPUs("nosuchif0", 1, nil); err == nil || !strings.Contains(err.Error(), "nosuchif0") {
		t.Errorf("PlanCPUs(nosuchif0) = %v, want an error naming it", err)
	}
}

func TestDisableTxChecksum(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, lb := veth(t, a, b, 1)
	k := a.kernel(t)
	on, err := k.TxChecksum(la.name)
	if err != nil {
		t.Fatal(err)
	}
	if !on {
		t.Fatalf("veth %s starts with tx checksum offload off; the test would prove nothing", la.name)
	}
	if err := k.DisableTxChecksum(la.name); err != nil {
		t.Fatal(err)
	}
	if on, err := k.TxChecksum(la.name); err != nil || on {
		t.Errorf("after DisableTxChecksum: TxChecksum(%s) = %v, %v; want off", la.name, on, err)
	}
	// The peer in the other namespace is untouched: the ioctl went to a's.
	kb := b.kernel(t)
	if on, err := kb.TxChecksum(lb.name); err != nil || !on {
		t.Errorf("peer %s tx checksum = %v, %v; want still on", lb.name, on, err)
	}
	if err := k.DisableTxChecksum(lb.name); err == nil || !strings.Contains(err.Error(), lb.name) {
		t.Errorf("DisableTxChecksum(%s) from the wrong namespace = %v, want an error naming it", lb.name, err)
	}
}

// TestOpenCurrent: Open(netns.None()) and Current both address the caller's
// namespace and agree with the package-level functions.
func TestOpenCurrent(t *testing.T) {
	k, err := Open(netns.None())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	viaOpen, err := k.Lookup("lo")
	if err != nil {
		t.Fatal(err)
	}
	viaCurrent, err := Current().Lookup("lo")
	if err != nil {
		t.Fatal(err)
	}
	Current().Close() // must not break the package-level functions
	viaPkg, err := Lookup("lo")
	if err != nil {
		t.Fatal(err)
	}
	if viaOpen.Index != viaPkg.Index || viaCurrent.Index != viaPkg.Index || viaOpen.RxQueues != viaPkg.RxQueues {
		t.Errorf("lo differs: Open %+v, Current %+v, package %+v", viaOpen, viaCurrent, viaPkg)
	}
}
