package nic

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"

	"github.com/afvs/afvs/internal/testsupport"
)

// TestTunDelivers6: an IPv6 packet written into a Tun reaches a socket
// listening on its destination, a local address on lo, and the device
// itself has no IPv6 address (no link-local: nothing is ever sent from
// it).
func TestTunDelivers6(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	tn := newTestNS(t)
	err := DoIn(tn.name, func() error {
		tun, err := OpenTun("afvst%d")
		if err != nil {
			return err
		}
		defer tun.Close()
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: mustCIDR(t, "2001:2:77::1/128"), Flags: 0x02}); err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp6", "[2001:2:77::1]:5353")
		if err != nil {
			return err
		}
		defer pc.Close()
		pkt := testsupport.Build(t, &layers.IPv6{HopLimit: 64, SrcIP: net.ParseIP("2001:2:78::9"), DstIP: net.ParseIP("2001:2:77::1")},
			testsupport.UDP(40000, 5353), gopacket.Payload("through the tun"))
		// The address's local route comes from the kernel's addrconf
		// work, a moment after it is added: write until one arrives.
		buf := make([]byte, 100)
		var n int
		var from net.Addr
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			if err := tun.Write(pkt); err != nil {
				return err
			}
			_ = pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, from, err = pc.ReadFrom(buf); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("nothing arrived: %v", err)
		} else if string(buf[:n]) != "through the tun" || from.String() != "[2001:2:78::9]:40000" {
			t.Errorf("got %q from %s", buf[:n], from)
		}
		link, err := netlink.LinkByName(tun.Name)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		if len(addrs) != 0 {
			t.Errorf("the tun has IPv6 addresses %v, want none", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDefaultRouteFamilies: ReplaceDefaultRoute sets the default route of
// its gateway's family and leaves the other's alone; DefaultRoute reads
// either; DeleteDefaultRoute removes one.
func TestDefaultRouteFamilies(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, _ := veth(t, a, b, 1)
	addAddr(t, a, la, "198.18.0.1/24")
	addAddr(t, a, la, "2001:2::1/64")
	k := a.kernel(t)
	gw4, gw6 := netip.MustParseAddr("198.18.0.254"), netip.MustParseAddr("2001:2::fe")
	for _, gw := range []netip.Addr{gw4, gw6} {
		if err := k.ReplaceDefaultRoute(la.name, gw); err != nil {
			t.Fatalf("ReplaceDefaultRoute(%s): %v", gw, err)
		}
	}
	for _, want := range []netip.Addr{gw4, gw6} {
		if gw, dev, ok, err := k.DefaultRoute(want.Is6()); err != nil || !ok || gw != want || dev != la.name {
			t.Errorf("DefaultRoute(ipv6=%v) = %s %s %v %v, want %s %s", want.Is6(), gw, dev, ok, err, want, la.name)
		}
	}
	if err := k.DeleteDefaultRoute(la.name, gw6); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := k.DefaultRoute(true); ok || err != nil {
		t.Errorf("IPv6 default route after the delete: %v, %v", ok, err)
	}
	if gw, _, ok, _ := k.DefaultRoute(false); !ok || gw != gw4 {
		t.Errorf("the IPv4 default route went with the IPv6 one: %s %v", gw, ok)
	}
}
