package main

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/internal/testnet"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// TestBlocklistIPv6: an IPv6 source far over its SYN rate is blocked in
// XDP by its /64 (defense.block_prefix6): its SYNs and those of another
// address in its /64 are dropped by the steering program (steering
// blocked) while the client, in another /64, keeps getting answers over
// IPv6; the director's log names the blocked prefix.
func TestBlocklistIPv6(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", IPv6: true, Weights: []int{1}, NoDirector: true})
	cfg := lab.Config() + "defense: {syn_rate_per_source: 5, burst: 5, block_factor: 3, block_for: 60s, block_prefix6: 64}\n"
	if err := os.WriteFile(lab.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(testnet.VIP6, 80).String()
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-t", vip, "-r", netip.AddrPortFrom(lab.RealAddrs6[0], 80).String(), "-g")
	if res := lab.GetFrom(testnet.VIP6, 5, 1); res.OK != 5 {
		t.Fatalf("before the flood: %d of 5 answered: %v", res.OK, res.Errors)
	}

	src, dst := macOf(t, lab.Client, "eth0"), macOf(t, lab.Director, "eth0")
	var fd int
	err := lab.Client.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	send := func(from netip.Addr, n int) {
		t.Helper()
		for i := range n {
			f := ts.Build(t, ts.Eth(src[:], dst[:]), &layers.IPv6{HopLimit: 64, SrcIP: from.AsSlice(), DstIP: testnet.VIP6.AsSlice()},
				ts.TCP(uint16(20000+i), 80, ts.SYN))
			if _, err := unix.Write(fd, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	blocked := func() uint64 {
		t.Helper()
		st, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Steering["blocked"]
	}

	heavy, sibling := netip.MustParseAddr("2001:2:0:77::1"), netip.MustParseAddr("2001:2:0:77:ffff::9")
	deadline := time.Now().Add(10 * time.Second)
	for blocked() == 0 {
		if time.Now().After(deadline) {
			st, _ := lab.Control().Status()
			t.Fatalf("the heavy IPv6 source was never blocked in XDP: drops %v, steering %v", st.Drops, st.Steering)
		}
		send(heavy, 100)
		time.Sleep(50 * time.Millisecond)
	}
	// Another address of the /64: dropped in XDP too.
	b0 := blocked()
	send(sibling, 50)
	deadline = time.Now().Add(5 * time.Second)
	for blocked() < b0+50 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := blocked() - b0; got < 50 {
		t.Fatalf("%d of 50 SYNs from %s (the blocked /64) dropped in XDP", got, sibling)
	}
	// The client's /64 is not blocked.
	if res := lab.GetFrom(testnet.VIP6, 5, 1); res.OK != 5 {
		t.Fatalf("after the block: %d of 5 answered: %v", res.OK, res.Errors)
	}
	if log := lab.DirectorLog(); !strings.Contains(log, "blocked=2001:2:0:77::/64") {
		t.Fatalf("the director's log does not name the blocked /64:\n%s", log)
	}
	t.Logf("%d frames dropped in XDP", blocked())
}
