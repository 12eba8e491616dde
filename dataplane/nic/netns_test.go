package nic

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var testSeq atomic.Int32

// testNS is a named network namespace of one test, with a netlink handle in
// it; both are removed in t.Cleanup whether the test passes or not.
type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	name := fmt.Sprintf("afvs-nic-%d-%d", os.Getpid(), testSeq.Add(1))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // keep the stray thread out of circulation
		t.Fatalf("return from namespace %s: %v", name, err)
	}
	tn := &testNS{name: name, ns: ns}
	t.Cleanup(func() {
		if tn.h != nil {
			tn.h.Close()
		}
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	if tn.h, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	lo, err := tn.h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return tn
}

// kernel opens the package's Kernel on the namespace.
func (tn *testNS) kernel(t *testing.T) *Kernel {
	t.Helper()
	k, err := Open(tn.ns)
	if err != nil {
		t.Fatalf("Open(%s): %v", tn.name, err)
	}
	t.Cleanup(k.Close)
	return k
}

type testLink struct {
	name  string
	index int
	mac   [6]byte
}

// veth creates a veth pair with one end in a and the other in b, both up,
// with rxQueues RX queues on a's end. Deleting a namespace removes its end
// and with it the pair.
func veth(t *testing.T, a, b *testNS, rxQueues int) (testLink, testLink) {
	t.Helper()
	n := testSeq.Add(1)
	nameA := fmt.Sprintf("afn%d-%da", os.Getpid()%100000, n)
	nameB := fmt.Sprintf("afn%d-%db", os.Getpid()%100000, n)
	la := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA, NumRxQueues: rxQueues, NumTxQueues: rxQueues},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(int(b.ns)),
	}
	if err := a.h.LinkAdd(la); err != nil {
		t.Fatalf("add veth %s/%s: %v", nameA, nameB, err)
	}
	ends := [2]testLink{}
	for i, side := range []struct {
		tn   *testNS
		name string
	}{{a, nameA}, {b, nameB}} {
		l, err := side.tn.h.LinkByName(side.name)
		if err != nil {
			t.Fatal(err)
		}
		if err := side.tn.h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		ends[i] = testLink{name: side.name, index: l.Attrs().Index}
		copy(ends[i].mac[:], l.Attrs().HardwareAddr)
	}
	return ends[0], ends[1]
}

func addAddr(t *testing.T, tn *testNS, l testLink, cidr string) {
	t.Helper()
	link, err := tn.h.LinkByName(l.name)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags |= 0x02 // IFA_F_NODAD: IPv6 addresses usable at once
	if err := tn.h.AddrAdd(link, a); err != nil {
		t.Fatalf("add %s to %s: %v", cidr, l.name, err)
	}
}

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDoIn: fn runs inside the named namespace (it sees that namespace's
// veth pair and not the caller's interfaces), the caller's thread never
// moves, and an unknown name is an error that names it.
func TestDoIn(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS)
	tn := newTestNS(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "afvsdoin0"}, PeerName: "afvsdoin1"}
	if err := tn.h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	var inside []string
	err = DoIn(tn.name, func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			inside = append(inside, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(inside)
	if !slices.Equal(inside, []string{"afvsdoin0", "afvsdoin1", "lo"}) {
		t.Errorf("interfaces seen inside %s: %v, want lo and the veth pair", tn.name, inside)
	}
	if _, err := net.InterfaceByName("afvsdoin0"); err == nil {
		t.Errorf("the namespace's veth is visible outside it")
	}
	want := errors.New("from fn")
	if err := DoIn(tn.name, func() error { return want }); err != want {
		t.Errorf("fn's error came back as %v", err)
	}
	missing := tn.name + "-missing"
	if err := DoIn(missing, func() error { t.Error("fn ran without its namespace"); return nil }); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("unknown namespace: %v", err)
	}
}
