package xdpprog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// fromSource6 is an IPv6 frame with its source replaced (the steering
// program checks no checksum).
func fromSource6(frame []byte, src netip.Addr) []byte {
	out := append([]byte(nil), frame...)
	a := src.As16()
	copy(out[ethLen+8:], a[:])
	return out
}

// TestSteeringBlocklist6: an IPv6 source is blocked by its /64 by
// default: every address of the prefix is dropped in XDP and counted as
// Blocked, another prefix's frames are redirected, an ICMPv6 error from
// a blocked router still reaches the worker, a frame for no service
// still passes; SetBlockPrefix6 128 blocks one address only and lifts the
// blocks made under /64; Unblock and expiry lift a block; Blocked lists
// each block as its prefix.
func TestSteeringBlocklist6(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if got := s.BlockPrefix6(); got != 64 {
		t.Fatalf("default IPv6 block prefix /%d, want /64", got)
	}
	syn := buildFrame(t, frameSpec{ipv6: true, dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80})
	a := netip.MustParseAddr
	sibling, other := a("2001:2::ffff:1"), a("2001:2:0:1::77")
	run := func(frame []byte, want uint32) {
		t.Helper()
		v, _ := runXDP(t, s.program(), frame)
		checkVerdict(t, v, want)
	}
	if err := s.Block(client6, time.Hour); err != nil {
		t.Fatal(err)
	}
	before := steeringStats(t, s)
	run(syn, xdpDrop)
	run(fromSource6(syn, sibling), xdpDrop) // same /64
	run(fromSource6(syn, other), xdpRedirect)
	run(buildFrame(t, frameSpec{ipv6: true, src: client6, dst: vip6, proto: layers.IPProtocolTCP, dstPort: 81}), xdpPass)
	// A router in the blocked prefix still gets its errors through.
	run(fromSource6(icmp6ErrorFrame(t, icmp6Spec{}), sibling), xdpRedirect)
	got := steeringStats(t, s).minus(before)
	if want := (StatsCounters{Total: 5, Blocked: 2, Redirected: 2, PassNoService: 1, ICMPErrors: 1}); got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
	if got, err := s.Blocked(10); err != nil || len(got) != 1 || got[0] != netip.MustParsePrefix("2001:2::/64") {
		t.Fatalf("Blocked() = %v, %v; want [2001:2::/64]", got, err)
	}
	// An IPv4 block and an IPv6 one live side by side.
	if err := s.Block(clientAddr, time.Hour); err != nil {
		t.Fatal(err)
	}
	run(buildFrame(t, frameSpec{dstPort: 80}), xdpDrop)

	// /128: the old blocks go, and one address is blocked alone.
	if err := s.SetBlockPrefix6(128); err != nil {
		t.Fatal(err)
	}
	run(syn, xdpRedirect)
	if err := s.Block(client6, time.Hour); err != nil {
		t.Fatal(err)
	}
	run(syn, xdpDrop)
	run(fromSource6(syn, sibling), xdpRedirect)
	if got, err := s.Blocked(10); err != nil || len(got) != 2 || got[1] != netip.PrefixFrom(client6, 128) {
		t.Fatalf("Blocked() = %v, %v; want the IPv4 /32 and %s/128", got, err, client6)
	}
	if err := s.Unblock(client6); err != nil {
		t.Fatal(err)
	}
	run(syn, xdpRedirect)

	// A block ends on time.
	if err := s.Block(sibling, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	run(fromSource6(syn, sibling), xdpDrop)
	time.Sleep(50 * time.Millisecond)
	run(fromSource6(syn, sibling), xdpRedirect)

	for _, bad := range []int{0, -1, 129} {
		if err := s.SetBlockPrefix6(bad); err == nil || !strings.Contains(err.Error(), "must be 1 to 128") {
			t.Errorf("SetBlockPrefix6(%d) = %v, want an error naming the range", bad, err)
		}
	}
	if got := s.BlockPrefix6(); got != 128 {
		t.Fatalf("a refused prefix changed it to /%d", got)
	}
}

// TestBlocklist6SkipsNATServerICMPv6: an ICMPv6 error from a VS/NAT real
// server is redirected even when the server's prefix is blocked (as a
// client flooding a service, say), as on IPv4
// (TestBlocklistSkipsNATServerICMP): the blocklist is for TCP/UDP
// sources, and such an error carries no flow of its own. The server's
// own SYN to a service is dropped.
func TestBlocklist6SkipsNATServerICMPv6(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	for _, src := range []netip.Addr{client6, realIP6} {
		if err := s.Block(src, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	syn := buildFrame(t, frameSpec{ipv6: true, dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80})
	for _, typ := range []uint8{1, 2, 3, 4} {
		icmp := icmp6Frame(t, realIP6, client6, typ)
		v, _ := runXDP(t, s.program(), syn)
		checkVerdict(t, v, xdpDrop)
		v, _ = runXDP(t, s.program(), fromSource6(syn, realIP6))
		checkVerdict(t, v, xdpDrop)
		before := steeringStats(t, s)
		v, _ = runXDP(t, s.program(), icmp)
		checkVerdict(t, v, xdpRedirect)
		if got, want := steeringStats(t, s).minus(before), (StatsCounters{Total: 1, Redirected: 1}); got != want {
			t.Errorf("ICMPv6 type %d from the real server: counters %+v, want %+v", typ, got, want)
		}
	}
}
