package xdpprog

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/testsupport"
)

// gateWords reads the blocklist gate as the program sees it.
func gateWords(t *testing.T, s *Steering) [gates]uint32 {
	t.Helper()
	var v [gates]uint32
	if err := s.gate.m.Lookup(uint32(0), &v); err != nil {
		t.Fatalf("read blocklist gate: %v", err)
	}
	return v
}

// TestBlockGateSkipsLookup: while a family's gate is clear the program
// does not look the blocklist up at all, so a live entry written behind
// Block's back drops nothing; once a Block sets the gate, that entry
// drops. An IPv6 block sets only the IPv6 word.
func TestBlockGateSkipsLookup(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{} {
		t.Fatalf("gate of a new program %v, want clear", got)
	}
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.blocked.Put(clientAddr.As4(), uint64(now+time.Hour)); err != nil {
		t.Fatal(err)
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	v, _ := runXDP(t, s.program(), syn)
	checkVerdict(t, v, xdpRedirect)

	if err := s.Block(client6, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{gate6: 1} {
		t.Fatalf("gate after an IPv6 block %v, want the IPv6 word only", got)
	}
	v, _ = runXDP(t, s.program(), syn)
	checkVerdict(t, v, xdpRedirect)

	if err := s.Block(netip.MustParseAddr("198.18.1.2"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{1, 1} {
		t.Fatalf("gate after an IPv4 block too %v, want both words", got)
	}
	v, _ = runXDP(t, s.program(), syn)
	checkVerdict(t, v, xdpDrop)
}

// TestBlockGateOpensFirst: with the gate clear, a Block drops the very
// next frame from the source, IPv4 and IPv6; a refused Block leaves the
// gate clear.
func TestBlockGateOpensFirst(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(clientAddr, 0); err == nil {
		t.Fatal("Block for 0s accepted")
	}
	if err := s.Block(netip.Addr{}, time.Hour); err == nil {
		t.Fatal("Block of the zero address accepted")
	}
	if got := gateWords(t, s); got != [gates]uint32{} {
		t.Fatalf("gate after refused blocks %v, want clear", got)
	}
	for _, c := range []struct {
		src   netip.Addr
		frame []byte
	}{
		{clientAddr, buildFrame(t, frameSpec{dstPort: 80})},
		{client6, buildFrame(t, frameSpec{ipv6: true, dst: vip6, proto: layers.IPProtocolTCP, dstPort: 80})},
	} {
		v, _ := runXDP(t, s.program(), c.frame)
		checkVerdict(t, v, xdpRedirect)
		if err := s.Block(c.src, time.Hour); err != nil {
			t.Fatal(err)
		}
		v, _ = runXDP(t, s.program(), c.frame)
		checkVerdict(t, v, xdpDrop)
	}
}

// TestBlockGateClosesAfterLastEnd: the gate's timer clears a family's
// word once the last of its blocks has ended, never before; a later
// Block opens it again; SetBlockPrefix6, which lifts every IPv6 block,
// clears the IPv6 word at once.
func TestBlockGateClosesAfterLastEnd(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.18.1.2")
	before, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	// The longer block first: the shorter one must not bring the end
	// forward.
	if err := s.Block(other, 80*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(clientAddr, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitGateClear(t, s, gate4, before+80*time.Millisecond)
	v, _ := runXDP(t, s.program(), fromSource(buildFrame(t, frameSpec{dstPort: 80}), other))
	checkVerdict(t, v, xdpRedirect)

	// Open again, then SetBlockPrefix6 clears the IPv6 word only.
	if err := s.Block(clientAddr, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(client6, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{1, 1} {
		t.Fatalf("gate after new blocks %v, want both words", got)
	}
	if err := s.SetBlockPrefix6(56); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{gate4: 1} {
		t.Fatalf("gate after SetBlockPrefix6 %v, want the IPv4 word only", got)
	}
	v, _ = runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 80}))
	checkVerdict(t, v, xdpDrop)

	// The IPv6 timer does the same for a short IPv6 block.
	before, err = monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Block(client6, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitGateClear(t, s, gate6, before+30*time.Millisecond)
	if got := gateWords(t, s); got[gate4] != 1 {
		t.Fatalf("IPv4 word cleared with an hour's block live: %v", got)
	}
}

// waitGateClear polls family's gate word until it is 0, failing if it
// reads 0 before notBefore (on the monotonic clock) or stays set for
// far longer than any block there lasts.
func waitGateClear(t *testing.T, s *Steering, family int, notBefore time.Duration) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gateWords(t, s)
		now, err := monotonicNow()
		if err != nil {
			t.Fatal(err)
		}
		if got[family] == 0 {
			if now < notBefore {
				t.Fatalf("gate word %d cleared %s before its last block ended", family, notBefore-now)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gate word %d still set 10s after its last block ended", family)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBlockGateConcurrentSweep races Block against the gate's sweep (run
// directly as well as by its timer): no block is ever in the map while
// its gate is clear, so every hour-long block drops its source's frame
// at the end, and once only short blocks remain and have ended the gate
// clears. Run with -race.
func TestBlockGateConcurrentSweep(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 50
	stop := make(chan struct{})
	var sweeps sync.WaitGroup
	sweeps.Add(1)
	go func() {
		defer sweeps.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.sweepGate()
			}
		}
	}()
	var wg sync.WaitGroup
	long := make([]netip.Addr, writers)
	errs := make(chan error, writers)
	for w := range writers {
		long[w] = netip.AddrFrom4([4]byte{198, 18, 2, byte(w)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				src := netip.AddrFrom4([4]byte{198, 18, 3 + byte(w), byte(i)})
				if err := s.Block(src, time.Duration(1+i%5)*time.Millisecond); err != nil {
					errs <- err
					return
				}
				if i == each/2 {
					if err := s.Block(long[w], time.Hour); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	sweeps.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	syn := buildFrame(t, frameSpec{dstPort: 80})
	for _, src := range long {
		v, _ := runXDP(t, s.program(), fromSource(syn, src))
		if v != xdpDrop {
			t.Fatalf("%s blocked for an hour: verdict %s, want XDP_DROP (gate %v)", src, verdictName(v), gateWords(t, s))
		}
	}
	for _, src := range long {
		if err := s.Unblock(src); err != nil {
			t.Fatal(err)
		}
	}
	// Only the short blocks' ends count now, but Unblock leaves the
	// hour-long ends in force: a fresh program shows the clearing.
	s2 := loadTestSteering(t)
	var wg2 sync.WaitGroup
	for w := range writers {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := range each {
				_ = s2.Block(netip.AddrFrom4([4]byte{198, 18, 3 + byte(w), byte(i)}), time.Duration(1+i%5)*time.Millisecond)
				s2.sweepGate()
			}
		}()
	}
	wg2.Wait()
	now, err := monotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	waitGateClear(t, s2, gate4, now-5*time.Millisecond)
	if st, err := s2.Blocked(10); err != nil || len(st) != 0 {
		t.Fatalf("gate clear with blocks live: %v %v", st, err)
	}
}

// TestBlockGateClosesOnLastUnblock: lifting a family's last block clears
// its word at once, an hour before the block would have ended; lifting
// one of two leaves it set and the other still dropped; the other family
// is untouched; a later Block opens the gate again.
func TestBlockGateClosesOnLastUnblock(t *testing.T) {
	testsupport.RequirePrivileged(t)
	s := loadTestSteering(t)
	if err := s.RegisterSocket(0, xskSocket(t)); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.18.1.2")
	for _, src := range []netip.Addr{clientAddr, other, client6} {
		if err := s.Block(src, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Unblock(other); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{1, 1} {
		t.Fatalf("gate after lifting one of two IPv4 blocks %v, want both words", got)
	}
	v, _ := runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 80}))
	checkVerdict(t, v, xdpDrop)
	if err := s.Unblock(clientAddr); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{gate6: 1} {
		t.Fatalf("gate after lifting the last IPv4 block %v, want the IPv6 word only", got)
	}
	v, _ = runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 80}))
	checkVerdict(t, v, xdpRedirect)
	if err := s.Unblock(client6); err != nil {
		t.Fatal(err)
	}
	if got := gateWords(t, s); got != [gates]uint32{} {
		t.Fatalf("gate after lifting every block %v, want clear", got)
	}
	if err := s.Block(clientAddr, time.Hour); err != nil {
		t.Fatal(err)
	}
	v, _ = runXDP(t, s.program(), buildFrame(t, frameSpec{dstPort: 80}))
	checkVerdict(t, v, xdpDrop)
}
