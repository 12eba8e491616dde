package xdpprog

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// vethPair is a veth link between two namespaces of the test's own:
// A (198.18.200.1/24, the sender) and B (198.18.200.2/24, where programs
// are attached). Removing the namespaces removes the veth.
type vethPair struct {
	nsA, nsB     netns.NsHandle
	nsBName      string
	ifA, ifB     string
	addrA, addrB netip.Addr
	hB           *netlink.Handle
	idxB         int
	macB         [6]byte
}

var (
	pairSeq   atomic.Int32
	vethAddrA = netip.MustParseAddr("198.18.200.1")
	vethAddrB = netip.MustParseAddr("198.18.200.2")
)

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	n := pairSeq.Add(1)
	pid := os.Getpid() % 100000
	p := &vethPair{
		ifA:   fmt.Sprintf("xp%da%d", pid, n),
		ifB:   fmt.Sprintf("xp%db%d", pid, n),
		addrA: vethAddrA,
		addrB: vethAddrB,
	}
	nameA := fmt.Sprintf("afvs-xdpprog-%d-%d-a", pid, n)
	p.nsBName = fmt.Sprintf("afvs-xdpprog-%d-%d-b", pid, n)
	p.nsA = newNamedNS(t, nameA)
	p.nsB = newNamedNS(t, p.nsBName)

	hA, err := netlink.NewHandleAt(p.nsA)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", nameA, err)
	}
	t.Cleanup(hA.Close)
	if p.hB, err = netlink.NewHandleAt(p.nsB); err != nil {
		t.Fatalf("netlink handle in %s: %v", p.nsBName, err)
	}
	t.Cleanup(p.hB.Close)

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.ifA}, PeerName: p.ifB, PeerNamespace: netlink.NsFd(p.nsB)}
	if err := hA.LinkAdd(veth); err != nil {
		t.Fatalf("create veth %s/%s: %v", p.ifA, p.ifB, err)
	}
	for _, side := range []struct {
		h    *netlink.Handle
		name string
		addr netip.Addr
	}{{hA, p.ifA, p.addrA}, {p.hB, p.ifB, p.addrB}} {
		l, err := side.h.LinkByName(side.name)
		if err != nil {
			t.Fatalf("find %s: %v", side.name, err)
		}
		ipnet := &net.IPNet{IP: side.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}
		if err := side.h.AddrAdd(l, &netlink.Addr{IPNet: ipnet}); err != nil {
			t.Fatalf("address %s on %s: %v", side.addr, side.name, err)
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", side.name, err)
		}
		if side.name == p.ifB {
			p.idxB = l.Attrs().Index
			p.macB = [6]byte(l.Attrs().HardwareAddr)
		}
	}
	return p
}

// newNamedNS creates a named namespace without leaving the calling thread
// in it, and deletes it when the test ends.
func newNamedNS(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	var ns netns.NsHandle
	err := onLockedThread(func() error {
		var err error
		ns, err = netns.NewNamed(name)
		return err
	})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return ns
}

// onLockedThread runs fn on a thread of its own and throws the thread away
// afterwards (the goroutine exits still locked), so whatever namespace fn
// switched to never leaks into other goroutines.
func onLockedThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		done <- fn()
	}()
	return <-done
}

// inNS runs fn with the calling thread in ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter namespace: %w", err)
		}
		return fn()
	})
}

// xdpState reads what netlink reports about XDP on B's veth.
func (p *vethPair) xdpState(t *testing.T) netlink.LinkXdp {
	t.Helper()
	l, err := p.hB.LinkByName(p.ifB)
	if err != nil {
		t.Fatalf("find %s: %v", p.ifB, err)
	}
	if x := l.Attrs().Xdp; x != nil {
		return *x
	}
	return netlink.LinkXdp{}
}

// waitDetached polls until B's veth has no XDP program, for up to 5 s: the
// kernel releases a link when its last descriptor is gone, which for a
// killed process is during its exit.
func (p *vethPair) waitDetached(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x := p.xdpState(t)
		if !x.Attached && x.ProgId == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still has xdp program id %d attached (mode %d)", p.ifB, x.ProgId, x.AttachMode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// udpReaches sends UDP datagrams from A to B's address and port and
// reports whether B's socket received one within a few seconds.
func (p *vethPair) udpReaches(t *testing.T, port uint16) error {
	t.Helper()
	var conn net.PacketConn
	err := inNS(p.nsB, func() error {
		var err error
		conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(p.addrB, port).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("listen in B: %w", err)
	}
	defer conn.Close()
	var send net.Conn
	err = inNS(p.nsA, func() error {
		var err error
		send, err = net.Dial("udp4", netip.AddrPortFrom(p.addrB, port).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("dial from A: %w", err)
	}
	defer send.Close()
	buf := make([]byte, 64)
	for range 25 {
		if _, err := send.Write([]byte("afvs")); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := conn.ReadFrom(buf)
		if err == nil && string(buf[:n]) == "afvs" {
			return nil
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("receive: %w", err)
		}
	}
	return fmt.Errorf("no datagram reached %s:%d in 5 s", p.addrB, port)
}
