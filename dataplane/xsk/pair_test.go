package xsk

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// pair is two network namespaces joined by a veth pair: end A in nsA, end
// B in nsB. Tests open sockets on A and drive traffic from B.
type pair struct {
	nsA, nsB     netns.NsHandle
	ifA, ifB     int
	macA, macB   net.HardwareAddr
	nameA, nameB string
}

type nsHandle = netns.NsHandle

var pairSeq atomic.Uint32

// newPair creates the namespaces and the veth pair, and removes them when
// the test ends however it ends.
func newPair(t testing.TB) *pair {
	t.Helper()
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.AFXDP)
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, pairSeq.Add(1))
	p := &pair{
		macA:  net.HardwareAddr{0x02, 0x58, 0x53, 0x4b, 0x00, 0x0a},
		macB:  net.HardwareAddr{0x02, 0x58, 0x53, 0x4b, 0x00, 0x0b},
		nameA: "xska" + id,
		nameB: "xskb" + id,
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	// The namespaces are anonymous: they live exactly as long as the
	// handles and sockets that refer to them, so nothing can outlive the
	// test, and no bind mount under /run/netns can be caught by another
	// process remounting that directory.
	for _, h := range []*netns.NsHandle{&p.nsA, &p.nsB} {
		ns, err := netns.New()
		if err != nil {
			netns.Set(orig)
			t.Fatalf("create netns: %v", err)
		}
		*h = ns
		t.Cleanup(func() { ns.Close() })
		// Quiet IPv6 router and neighbour solicitations, which would
		// otherwise land in the sockets under test.
		os.WriteFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", []byte("1"), 0)
		os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
		if err := netns.Set(orig); err != nil {
			t.Fatalf("return to original netns: %v", err)
		}
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return to original netns: %v", err)
	}

	hA, err := netlink.NewHandleAt(p.nsA)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", p.nameA, err)
	}
	defer hA.Close()
	hB, err := netlink.NewHandleAt(p.nsB)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", p.nameB, err)
	}
	defer hB.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: p.nameA, HardwareAddr: p.macA, MTU: 1500},
		PeerName:         p.nameB,
		PeerHardwareAddr: p.macB,
		PeerNamespace:    netlink.NsFd(p.nsB),
	}
	if err := hA.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", p.nameA, p.nameB, err)
	}
	// Delete the veth explicitly too, so that it goes even if a leaked
	// socket kept a namespace alive.
	t.Cleanup(func() {
		h, err := netlink.NewHandleAt(p.nsA)
		if err != nil {
			t.Errorf("netlink handle to delete %s: %v", p.nameA, err)
			return
		}
		defer h.Close()
		if l, err := h.LinkByName(p.nameA); err == nil {
			if err := h.LinkDel(l); err != nil {
				t.Errorf("delete veth %s: %v", p.nameA, err)
			}
		}
	})
	for _, e := range []struct {
		h    *netlink.Handle
		name string
		idx  *int
	}{{hA, p.nameA, &p.ifA}, {hB, p.nameB, &p.ifB}} {
		l, err := e.h.LinkByName(e.name)
		if err != nil {
			t.Fatalf("find %s: %v", e.name, err)
		}
		if err := e.h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", e.name, err)
		}
		*e.idx = l.Attrs().Index
	}
	return p
}

// in runs fn with the calling goroutine's thread in ns, where interface
// indexes, socket creation and XDP attachment resolve.
func in(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot return thread to its netns: %v", err))
		}
	}()
	fn()
}
