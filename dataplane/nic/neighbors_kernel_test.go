package nic

import (
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netlink"
)

// setNeighSysctl writes a per-device neighbour sysctl of k's namespace; the
// /proc/sys/net view follows the namespace of the thread that opens it.
func setNeighSysctl(t *testing.T, k *Kernel, dev, key, val string) {
	t.Helper()
	path := "/proc/sys/net/ipv4/neigh/" + dev + "/" + key
	if err := k.inNamespace(func() error { return os.WriteFile(path, []byte(val), 0o644) }); err != nil {
		t.Fatalf("sysctl %s=%s: %v", path, val, err)
	}
}

// kernelNeighState reads the kernel's own entry, bypassing the cache under test.
func kernelNeighState(t *testing.T, tn *testNS, ifindex int, ip netip.Addr) (int, bool) {
	t.Helper()
	list, err := tn.h.NeighList(ifindex, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, nb := range list {
		if got, ok := netip.AddrFromSlice(nb.IP); ok && got.Unmap() == ip {
			return nb.State, true
		}
	}
	return 0, false
}

func TestNeighborsKernel(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	goroutines := runtime.NumGoroutine()
	a, b := newTestNS(t), newTestNS(t)
	la, lb := veth(t, a, b, 1)
	addAddr(t, a, la, "198.18.0.1/24")
	addAddr(t, b, lb, "198.18.0.2/24")
	k := a.kernel(t)
	// Short timers so that FAILED and the STALE probe happen within the test.
	setNeighSysctl(t, k, la.name, "retrans_time_ms", "100")
	setNeighSysctl(t, k, la.name, "delay_first_probe_time", "1")

	changes := make(chan struct{}, 64)
	n, err := k.Neighbors(NeighborsOptions{
		Refresh:  150 * time.Millisecond,
		OnChange: func() { changes <- struct{}{} },
		OnError:  func(err error) { t.Logf("neighbors: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()

	peer := netip.MustParseAddr("198.18.0.2")
	if _, ok := n.Lookup(la.index, peer); ok {
		t.Fatal("peer resolved before anyone asked")
	}
	if err := n.Want(la.index, peer); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "peer MAC", func() bool { _, ok := n.Lookup(la.index, peer); return ok })
	if mac, _ := n.Lookup(la.index, peer); mac != lb.mac {
		t.Errorf("peer MAC %x, want %x (the far veth end)", mac, lb.mac)
	}
	// OnChange runs after the change that Lookup already answers from, so
	// it may come a moment after the MAC does.
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Error("OnChange was not called when the peer resolved")
	}

	// Nobody answers for .77: the kernel must be resolving it because we
	// asked (INCOMPLETE), give up (FAILED), and be asked again by the
	// refresh timer (INCOMPLETE after FAILED). Lookup never says ok.
	silent := netip.MustParseAddr("198.18.0.77")
	if err := n.Want(la.index, silent); err != nil {
		t.Fatal(err)
	}
	var seen []int
	deadline := time.Now().Add(5 * time.Second)
	retried := false
	for time.Now().Before(deadline) && !retried {
		if _, ok := n.Lookup(la.index, silent); ok {
			t.Fatalf("Lookup(%s) ok for an address nobody answers", silent)
		}
		if st, ok := kernelNeighState(t, a, la.index, silent); ok && (len(seen) == 0 || seen[len(seen)-1] != st) {
			seen = append(seen, st)
			if len(seen) >= 3 && st == NudIncomplete && seen[len(seen)-2] == NudFailed {
				retried = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !retried {
		t.Errorf("kernel states of %s over time: %v, want INCOMPLETE, FAILED, then INCOMPLETE again", silent, seen)
	}

	// A STALE entry only gets confirmed when someone sends through the
	// kernel, which the dataplane does not; the refresh must do it.
	if err := a.h.NeighSet(&netlink.Neigh{LinkIndex: la.index, IP: peer.AsSlice(), HardwareAddr: lb.mac[:], State: NudStale}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "STALE peer to be confirmed REACHABLE", func() bool {
		st, ok := kernelNeighState(t, a, la.index, peer)
		return ok && st == NudReachable
	})
	if _, ok := n.Lookup(la.index, peer); !ok {
		t.Error("peer not usable after re-confirmation")
	}

	n.Close()
	closed = true
	eventually(t, 2*time.Second, "subscription goroutines to exit", func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestNeighborsKernelFlushedNeighbour: a wanted neighbour in use that the
// kernel forgets (ip neigh flush, or an operator's delete) is resolved
// again at once, as the kernel would at the next packet to it; the
// refresh tick is an hour here, so waiting for it cannot pass. Over both
// families.
func TestNeighborsKernelFlushedNeighbour(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	a, b := newTestNS(t), newTestNS(t)
	la, lb := veth(t, a, b, 1)
	addAddr(t, a, la, "198.18.0.1/24")
	addAddr(t, b, lb, "198.18.0.2/24")
	addAddr(t, a, la, "2001:2::1/64")
	addAddr(t, b, lb, "2001:2::2/64")
	n, err := a.kernel(t).Neighbors(NeighborsOptions{Refresh: time.Hour, OnError: func(err error) { t.Logf("neighbors: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, peer := range []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")} {
		if err := n.Want(la.index, peer); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "peer "+peer.String(), func() bool { _, ok := n.Lookup(la.index, peer); return ok })
		if err := a.h.NeighDel(&netlink.Neigh{LinkIndex: la.index, IP: peer.AsSlice()}); err != nil {
			t.Fatalf("delete the kernel's entry for %s: %v", peer, err)
		}
		// Nothing else in a's namespace sends to the peer: a kernel entry
		// that comes back REACHABLE was asked for by the cache. (The
		// cache's own unusable moment can be too short to observe.)
		family := netlink.FAMILY_V4
		if peer.Is6() {
			family = netlink.FAMILY_V6
		}
		eventually(t, 10*time.Second, "the kernel to resolve "+peer.String()+" again", func() bool {
			list, err := a.h.NeighList(la.index, family)
			if err != nil {
				t.Fatal(err)
			}
			for _, nb := range list {
				if got, ok := netip.AddrFromSlice(nb.IP); ok && got == peer {
					return nb.State == NudReachable
				}
			}
			return false
		})
		eventually(t, 10*time.Second, "peer "+peer.String()+" usable again", func() bool { _, ok := n.Lookup(la.index, peer); return ok })
		if mac, _ := n.Lookup(la.index, peer); mac != lb.mac {
			t.Errorf("%s: MAC %x, want %x", peer, mac, lb.mac)
		}
	}
}
