package main

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// TestIPv6FragmentsDropped: IPv6 fragments to an IPv6 VIP are dropped by
// the director and counted as ipv6_fragment, not left to its kernel. A
// 3000-byte UDP datagram leaves the client as three fragments; the steering
// program redirects each (by the VIP and the protocol its Fragment header
// names) and the worker drops them, so the real server never sees the
// datagram. An unfragmented datagram of the same service is forwarded and
// echoed, before and after.
func TestIPv6FragmentsDropped(t *testing.T) {
	const port = 5353
	lab := newLab(t, testnet.LabOptions{Mode: "dr", IPv6: true, Weights: []int{1}})
	vip := netip.AddrPortFrom(testnet.VIP6, port)
	mustAfvsadm(t, lab, "-A", "-u", vip.String(), "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-u", vip.String(), "-r", netip.AddrPortFrom(lab.RealAddrs6[0], port).String(), "-g")
	got := startUDPEcho(t, lab.Reals[0], vip)
	var conn *net.UDPConn
	if err := lab.Client.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(vip))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 65536)
	echo := func(what string, size int) {
		t.Helper()
		msg := bytes.Repeat([]byte{'s'}, size)
		var n int
		var err error
		for range 5 { // UDP may lose a datagram under load
			if _, err = conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if n, err = conn.Read(buf); err == nil {
				break
			}
		}
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("%s: echo of %d bytes, err %v", what, n, err)
		}
	}
	echo("before the fragments", 1000)

	if _, err := conn.Write(bytes.Repeat([]byte{'f'}, 3000)); err != nil {
		t.Fatal(err)
	}
	var drops uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		if drops = st.Drops["ipv6_fragment"]; drops >= 3 {
			break
		}
	}
	if drops != 3 {
		st, _ := lab.Control().Status()
		t.Fatalf("ipv6_fragment drops %d, want 3 (the datagram's fragments); drops %v, steering %+v", drops, st.Drops, st.Steering)
	}
	echo("after the fragments", 1000)
	if sizes := got(); slices.Contains(sizes, 3000) {
		t.Errorf("the real server received the fragmented datagram: sizes %v", sizes)
	}
	if st := quiesced(t, lab); st.Drops["ipv6_fragment"] != 3 {
		t.Errorf("ipv6_fragment drops %d at the end, want 3", st.Drops["ipv6_fragment"])
	}
}
