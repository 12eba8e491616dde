package xdpprog

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// fromSource is frame with its IPv4 source replaced (the steering program
// does not check the IPv4 checksum).
func fromSource(frame []byte, src netip.Addr) []byte {
	out := append([]byte(nil), frame...)
	a := src.As4()
	copy(out[ethLen+12:], a[:]) // the IPv4 source
	return out
}

// TestSteeringBlocklist runs the steering program with BPF_PROG_TEST_RUN:
// a blocked source's frames to a service are dropped and counted as
// Blocked, other sources' are redirected, a block ends on time, frames
// for another MAC or no service still pass, and Unblock lifts a block.
func TestSteeringBlocklist(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	other := netip.MustParseAddr("198.18.1.2")
	if err := s.Block(clientAddr, time.Hour); err != nil {
		t.Fatal(err)
	}
	v, _ := runXDP(t, s.program(), syn)
	checkVerdict(t, v, xdpDrop)
	v, _ = runXDP(t, s.program(), fromSource(syn, other))
	checkVerdict(t, v, xdpRedirect)
	// Not for this director, or for no service: the kernel's, blocked or not.
	otherMAC := append([]byte(nil), syn...)
	otherMAC[5] = 0x99
	v, _ = runXDP(t, s.program(), otherMAC)
	checkVerdict(t, v, xdpPass)
	v, _ = runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 81}))
	checkVerdict(t, v, xdpPass)
	// A non-first fragment of a blocked source is dropped too.
	v, _ = runXDP(t, s.program(), buildFrame(t, frameSpec{fragOff: 185}))
	checkVerdict(t, v, xdpDrop)

	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocked != 2 || st.Redirected != 1 || st.Total != 5 {
		t.Fatalf("counters %+v: want 2 blocked, 1 redirected, and each of the 5 frames counted once", st)
	}
	if got, err := s.Blocked(10); err != nil || len(got) != 1 || got[0] != netip.PrefixFrom(clientAddr, 32) {
		t.Fatalf("Blocked() = %v, %v", got, err)
	}

	// A block ends on time.
	if err := s.Block(other, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	v, _ = runXDP(t, s.program(), fromSource(syn, other))
	checkVerdict(t, v, xdpDrop)
	time.Sleep(50 * time.Millisecond)
	v, _ = runXDP(t, s.program(), fromSource(syn, other))
	checkVerdict(t, v, xdpRedirect)

	if err := s.Unblock(clientAddr); err != nil {
		t.Fatal(err)
	}
	v, _ = runXDP(t, s.program(), syn)
	checkVerdict(t, v, xdpRedirect)
	if got, err := s.Blocked(10); err != nil || len(got) != 0 {
		t.Fatalf("after Unblock and expiry: Blocked() = %v, %v", got, err)
	}
}

func TestBlockRefusesBadValues(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	for _, c := range []struct {
		src  netip.Addr
		d    time.Duration
		want string
	}{
		{netip.MustParseAddr("fe80::1%eth0"), time.Second, "without a zone"},
		{netip.Addr{}, time.Second, "IPv4 or IPv6"},
		{netip.MustParseAddr("2001:2::1"), 0, "for 0s"},
		{clientAddr, 0, "for 0s"},
		{clientAddr, 48 * time.Hour, "at most 24h"},
	} {
		if err := s.Block(c.src, c.d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Block(%s, %s) = %v, want an error naming %q", c.src, c.d, err, c.want)
		}
	}
	if got, _ := s.Blocked(10); len(got) != 0 {
		t.Fatalf("refused blocks left %v", got)
	}
}

// TestBlocklistSkipsNATServerICMP: an ICMP message from a VS/NAT real
// server is redirected even when that server's address is blocked (as a
// client flooding a service, say): the blocklist is for TCP/UDP sources,
// and such a frame has no flow key. The server's own SYN to a service is
// dropped.
func TestBlocklistSkipsNATServerICMP(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	for _, src := range []netip.Addr{clientAddr, realIP} {
		if err := s.Block(src, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	icmp := buildFrame(t, frameSpec{src: realIP, dst: clientAddr, proto: layers.IPProtocolICMPv4})
	for range 3 {
		v, _ := runXDP(t, s.program(), syn)
		checkVerdict(t, v, xdpDrop)
		v, _ = runXDP(t, s.program(), fromSource(syn, realIP))
		checkVerdict(t, v, xdpDrop)
		v, _ = runXDP(t, s.program(), icmp)
		checkVerdict(t, v, xdpRedirect)
	}
}
