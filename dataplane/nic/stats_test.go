package nic

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netlink"
)

// TestLinkAndDriverStats: on a veth pair, the driver's statistics come
// back by name (veth keeps peer_ifindex, the other end's index), the link
// counters of both ends read, and a name the namespace lacks or a
// malformed one is an error naming it.
func TestLinkAndDriverStats(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	tn := newTestNS(t)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "afvsst0"}, PeerName: "afvsst1"}
	if err := tn.h.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	var drv map[string]uint64
	var before, after LinkCounters
	err := DoIn(tn.name, func() error {
		for _, n := range []string{"afvsst0", "afvsst1"} {
			l, err := netlink.LinkByName(n)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		var err error
		if drv, err = DriverStats("afvsst0"); err != nil {
			return err
		}
		if before, err = LinkStats("afvsst0"); err != nil {
			return err
		}
		after, err = LinkStats("afvsst1")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := tn.h.LinkByName("afvsst1")
	if err != nil {
		t.Fatal(err)
	}
	if peer, ok := drv["peer_ifindex"]; !ok || peer != uint64(l1.Attrs().Index) {
		t.Errorf("veth driver stats: peer_ifindex %d (present %v), want afvsst1's index %d: %v", peer, ok, l1.Attrs().Index, drv)
	}
	t.Logf("veth driver stats: %v", drv)
	t.Logf("link counters %+v, %+v", before, after)
	err = DoIn(tn.name, func() error { _, err := LinkStats("afvsnone"); return err })
	if err == nil || !strings.Contains(err.Error(), "afvsnone") {
		t.Errorf("missing interface: %v", err)
	}
	err = DoIn(tn.name, func() error { _, err := DriverStats("afvsnone"); return err })
	if err == nil || !strings.Contains(err.Error(), "afvsnone") {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := DriverStats("a/b"); err == nil || !strings.Contains(err.Error(), "a/b") {
		t.Errorf("malformed name: %v", err)
	}
}
