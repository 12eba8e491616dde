package nic

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/afvs/afvs/internal/testsupport"
)

func TestSolicitSource(t *testing.T) {
	addr := func(cidr string, flags int) netlink.Addr {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		a.Flags = flags
		return *a
	}
	target := netip.MustParseAddr("2001:2:0:2::11")
	for _, c := range []struct {
		name   string
		addrs  []netlink.Addr
		src    string
		manual bool
	}{
		{"usable link-local: the kernel solicits", []netlink.Addr{addr("2001:2::2/64", 0x82), addr("fe80::1/64", 0x80)}, "", false},
		{"tentative link-local", []netlink.Addr{addr("fe80::1/64", 0xc0), addr("2001:2::2/64", 0x82)}, "2001:2::2", true},
		{"optimistic link-local", []netlink.Addr{addr("fe80::1/64", 0x84), addr("2001:2::2/64", 0x82)}, "2001:2::2", true},
		{"no link-local", []netlink.Addr{addr("2001:2::2/64", 0)}, "2001:2::2", true},
		{"on the target's prefix first", []netlink.Addr{addr("2001:2::2/64", 0), addr("2001:2:0:2::1/64", 0)}, "2001:2:0:2::1", true},
		{"tentative and failed globals skipped", []netlink.Addr{addr("2001:2:0:2::1/64", 0x40), addr("2001:2:0:2::3/64", 0x08), addr("2001:2::2/64", 0)}, "2001:2::2", true},
		{"nothing usable", []netlink.Addr{addr("fe80::1/64", 0x40), addr("2001:2::2/64", 0x40)}, "", true},
	} {
		src, manual := solicitSource(c.addrs, target)
		want := netip.Addr{}
		if c.src != "" {
			want = netip.MustParseAddr(c.src)
		}
		if src != want || manual != c.manual {
			t.Errorf("%s: source %v manual %v, want %v %v", c.name, src, manual, want, c.manual)
		}
	}
}

// TestNeighborSolicitationMessage checks the hand-made solicitation with
// gopacket: type, target, the source link-layer option, and the
// solicited-node group it is sent to.
func TestNeighborSolicitationMessage(t *testing.T) {
	target := netip.MustParseAddr("2001:2::abcd:1234")
	mac := [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	p := gopacket.NewPacket(neighborSolicitation(target, mac), layers.LayerTypeICMPv6, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	icmp, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	ns, _ := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	if icmp == nil || ns == nil {
		t.Fatalf("gopacket found %v, want an ICMPv6 neighbour solicitation", p.Layers())
	}
	if icmp.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0) {
		t.Errorf("type %v", icmp.TypeCode)
	}
	if !ns.TargetAddress.Equal(net.IP(target.AsSlice())) {
		t.Errorf("target %v, want %v", ns.TargetAddress, target)
	}
	if len(ns.Options) != 1 || ns.Options[0].Type != layers.ICMPv6OptSourceAddress || string(ns.Options[0].Data) != string(mac[:]) {
		t.Errorf("options %+v, want one source link-layer address %x", ns.Options, mac)
	}
	if got := solicitedNode(target); got != netip.MustParseAddr("ff02::1:ffcd:1234") {
		t.Errorf("solicited-node group %v, want ff02::1:ffcd:1234", got)
	}
}

// TestNeighborsKernelTentativeLinkLocal: right after a link comes up its
// link-local address is in duplicate address detection, and the kernel
// then solicits nothing for a resolution request; the cache must still
// resolve an IPv6 neighbour on demand, from the interface's usable global
// address, well before detection ends. Detection is stretched to a minute
// here, so a cache that waits for it cannot pass.
func TestNeighborsKernelTentativeLinkLocal(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	k := a.kernel(t)
	if err := k.inNamespace(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/dad_transmits", []byte("60"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	la, lb := veth(t, a, b, 1)
	addAddr(t, a, la, "2001:2::1/64")
	addAddr(t, b, lb, "2001:2::2/64")
	tentative := func() bool {
		t.Helper()
		link, err := a.h.LinkByIndex(la.index)
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := a.h.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				return ad.Flags&ifaFlagTentative != 0
			}
		}
		t.Fatal("no link-local address on the director's end")
		return false
	}
	if !tentative() {
		t.Fatal("link-local address not tentative: the test needs one in duplicate address detection")
	}
	n, err := k.Neighbors(NeighborsOptions{OnError: func(err error) { t.Logf("neighbors: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	peer := netip.MustParseAddr("2001:2::2")
	if err := n.Want(la.index, peer); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "IPv6 peer MAC", func() bool { _, ok := n.Lookup(la.index, peer); return ok })
	if mac, _ := n.Lookup(la.index, peer); mac != lb.mac {
		t.Errorf("peer MAC %x, want %x (the far veth end)", mac, lb.mac)
	}
	if !tentative() {
		t.Error("the link-local address finished duplicate address detection first: the test proved nothing")
	}
}
