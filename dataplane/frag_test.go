package dataplane

import (
	"testing"
	"time"

	"github.com/afvs/afvs/internal/header"
	c "github.com/afvs/afvs/internal/testsupport/checker"
)

// released collects what Released hands out after the last frame.
func released(t *testing.T, r *fxRig) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		f, second, slot, ok := r.p.Released()
		if !ok {
			return out
		}
		if slot != 0 {
			t.Fatalf("released fragment for slot %d", slot)
		}
		out = append(out, append([]byte(nil), f...))
		if second != nil {
			out = append(out, append([]byte(nil), second...))
		}
	}
}

func mustForward(t *testing.T, r *fxRig, f []byte) []byte {
	t.Helper()
	v, out, _ := r.run(f, 256)
	if v != VerdictForward {
		t.Fatalf("verdict %d, want forward", v)
	}
	return out
}

func mustHold(t *testing.T, r *fxRig, f []byte) {
	t.Helper()
	if v, _, _ := r.run(f, 256); v != VerdictHeld {
		t.Fatalf("verdict %d, want held", v)
	}
}

func fragDR(off int) []c.Checker {
	return dr(fxRSDR, c.SrcAddr(fxClient), c.DstAddr(fxVIPDR), c.FragmentOffset(off))
}

// TestFragmentsInOrder: the first fragment is scheduled, the others follow
// it to the same real server; the datagram counts as one packet in, with
// every fragment's bytes, and as one connection.
func TestFragmentsInOrder(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	fs := bigDgram(t, fxVIPDR, 1)
	var bytes uint64
	for i, f := range fs {
		c.Frame(t, mustForward(t, r, f), fragDR(i*1480)...)
		bytes += uint64(len(f) - 14)
	}
	id := r.snap.Services[1].Dests[0].ID
	if got := r.c.Dest(id); got.InPkts != 1 || got.InBytes != bytes || got.Conns != 1 {
		t.Fatalf("real server traffic %+v, want 1 packet of %d bytes, 1 connection", got, bytes)
	}
	if st := r.p.FragStats(); st.Decisions != 1 || st.Held != 0 {
		t.Fatalf("fragment table %+v", st)
	}
}

// TestFragmentsOutOfOrder: later fragments that come before their first
// are held, then released in arrival order after the first, tunnelled
// like it; a second datagram's held fragment stays held.
func TestFragmentsOutOfOrder(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	fs := bigDgram(t, fxVIPTUN, 2)
	other := bigDgram(t, fxVIPTUN, 3)
	mustHold(t, r, fs[2])
	mustHold(t, r, other[1])
	mustHold(t, r, fs[1])
	if got := released(t, r); len(got) != 0 {
		t.Fatalf("%d fragments released before the first came", len(got))
	}
	first := mustForward(t, r, fs[0])
	c.Frame(t, first, tun(fxRSTUN, false, c.ID(2), c.FragmentOffset(0), c.MoreFragments(true))...)
	got := released(t, r)
	// The last fragment is small and goes whole; the middle one, 1500
	// bytes, with the tunnel header exceeds the MTU and leaves as two
	// pieces, both with MF, since more of the datagram follows them.
	if len(got) != 3 {
		t.Fatalf("%d frames released, want 3", len(got))
	}
	c.Frame(t, got[0], tun(fxRSTUN, false, c.ID(2), c.FragmentOffset(2960), c.MoreFragments(false))...)
	c.Frame(t, got[1], tun(fxRSTUN, false, c.ID(2), c.FragmentOffset(1480), c.MoreFragments(true))...)
	c.Frame(t, got[2], tun(fxRSTUN, false, c.ID(2), c.MoreFragments(true))...)
	if st := r.p.FragStats(); st.Held != 1 {
		t.Fatalf("held %d, want the other datagram's 1", st.Held)
	}
	var tot Totals
	tot.Add(r.c)
	if tot.Drops[DropFragTimeout] != 0 || tot.Drops[DropFragHoldFull] != 0 {
		t.Fatalf("drops %v", tot.Drops)
	}
}

// TestFragmentsDuplicate: a repeated first fragment keeps the decision and
// the connection; a repeated later fragment is forwarded again (the real
// server's reassembly discards duplicates).
func TestFragmentsDuplicate(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	fs := bigDgram(t, fxVIPDR, 4)
	mustForward(t, r, fs[0])
	mustForward(t, r, fs[0])
	mustForward(t, r, fs[1])
	c.Frame(t, mustForward(t, r, fs[1]), fragDR(1480)...)
	id := r.snap.Services[1].Dests[0].ID
	if got := r.c.Dest(id); got.Conns != 1 || got.InPkts != 2 {
		t.Fatalf("real server traffic %+v: want 1 connection, 2 packets in (the first fragment twice)", got)
	}
	if st := r.p.FragStats(); st.Decisions != 1 {
		t.Fatalf("fragment table %+v", st)
	}
}

// TestFragmentsTableFull: more datagrams than the table holds evict the
// oldest decisions; a later fragment of an evicted datagram is held, and
// dropped when its hold time runs out.
func TestFragmentsTableFull(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	var firsts [][]byte
	var seconds [][]byte
	for i := range FragSlots + FragSlots/2 {
		fs := bigDgram(t, fxVIPDR, uint16(i))
		firsts, seconds = append(firsts, fs[0]), append(seconds, fs[1])
	}
	for _, f := range firsts {
		mustForward(t, r, f)
		r.clock.Advance(1000) // ordered ages
	}
	st := r.p.FragStats()
	if st.Evicted == 0 || st.Decisions > FragSlots {
		t.Fatalf("fragment table %+v after %d datagrams in %d slots", st, len(firsts), FragSlots)
	}
	// The newest datagram is never the one evicted.
	mustForward(t, r, seconds[len(seconds)-1])
	forwarded, held := 0, 0
	for i := len(seconds) - 2; i >= 0; i-- {
		v, _, _ := r.run(seconds[i], 256)
		switch v {
		case VerdictForward:
			forwarded++
		case VerdictHeld:
			held++
		}
		if held == FragHeld {
			break
		}
	}
	if held == 0 || forwarded == 0 {
		t.Fatalf("forwarded %d, held %d: want some of each", forwarded, held)
	}
	r.clock.Advance(FragHoldTime + 1)
	mustForward(t, r, seconds[len(seconds)-1])
	var tot Totals
	tot.Add(r.c)
	if v, _, _ := r.run(bigDgram(t, fxVIPDR, 60000)[1], 256); v != VerdictHeld || r.p.FragStats().Held != 1 {
		t.Fatalf("verdict %d, held %d after the timeout", v, r.p.FragStats().Held)
	}
	tot = Totals{}
	tot.Add(r.c)
	if tot.Drops[DropFragTimeout] != uint64(held) {
		t.Fatalf("%d timed out, want the %d held", tot.Drops[DropFragTimeout], held)
	}
}

// TestFragmentDecisionExpires: a later fragment more than FragKeep after
// its datagram's last fragment finds no decision and is held.
func TestFragmentDecisionExpires(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	fs := bigDgram(t, fxVIPDR, 5)
	mustForward(t, r, fs[0])
	r.clock.Advance(FragKeep - 1)
	mustForward(t, r, fs[1]) // refreshes the decision
	r.clock.Advance(FragKeep - 1)
	mustForward(t, r, fs[2])
	r.clock.Advance(FragKeep + 1)
	mustHold(t, r, fs[2])
}

// TestUnreleasedFragmentsAreCounted: a caller that does not collect the
// released fragments before its next frame loses them, counted.
func TestUnreleasedFragmentsAreCounted(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	fs := bigDgram(t, fxVIPDR, 6)
	mustHold(t, r, fs[1])
	mustForward(t, r, fs[0])
	mustForward(t, r, seg(t, fxVIPDR, 80))
	var tot Totals
	tot.Add(r.c)
	if tot.Drops[DropFragTimeout] != 1 || r.p.FragStats().Held != 0 {
		t.Fatalf("timeout drops %d, held %d", tot.Drops[DropFragTimeout], r.p.FragStats().Held)
	}
}

// TestICMPAndFragmentPathsAllocateNothing: forwarding an ICMP error, a
// first fragment, a later one, holding one and releasing it allocate
// nothing per frame.
func TestICMPAndFragmentPathsAllocateNothing(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	mustForward(t, r, seg(t, fxVIPDR, 80))
	icmp := icmpAbout(t, fxVIPDR, 80)
	fs := bigDgram(t, fxVIPTUN, 9)
	buf := make([]byte, maxFrame)
	run := func(f []byte) Verdict {
		copy(buf[256:], f)
		v, _ := r.p.Process(r.snap, buf, 256, len(f))
		return v
	}
	id := uint16(100)
	if a := testing.AllocsPerRun(200, func() {
		id++ // a new datagram each round
		for _, f := range fs {
			ip := header.IPv4(f[14:])
			ip.SetID(id)
			ip.SetChecksum(0)
			ip.SetChecksum(ip.CalculateChecksum())
		}
		if run(icmp) != VerdictForward {
			t.Fatal("icmp not forwarded")
		}
		if run(fs[1]) != VerdictHeld || run(fs[0]) != VerdictForward {
			t.Fatal("fragments")
		}
		for {
			if _, _, _, ok := r.p.Released(); !ok {
				break
			}
		}
		if run(fs[2]) != VerdictForward {
			t.Fatal("later fragment")
		}
	}); a != 0 {
		t.Fatalf("%v allocations per round", a)
	}
}

// BenchmarkICMPAndFragments is the per-frame cost of the ICMP-error and
// fragment paths next to an established segment's, in one run: an ICMP
// error forwarded to its connection's real server; a first fragment of a
// new datagram of an existing flow (its decision recorded); a later
// fragment following its first; and a later fragment held, then released
// by its first.
func BenchmarkICMPAndFragments(b *testing.B) {
	setID := func(f []byte, id uint16) {
		ip := header.IPv4(f[14:])
		ip.SetID(id)
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
	}
	buf := make([]byte, maxFrame)
	run := func(b *testing.B, r *fxRig, f []byte, want Verdict) {
		copy(buf[256:], f)
		if v, _ := r.p.Process(r.snap, buf, 256, len(f)); v != want {
			b.Fatalf("verdict %d, want %d", v, want)
		}
	}
	b.Run("established", func(b *testing.B) {
		r := newFxRig(b, 1024, 64)
		run(b, r, seg(b, fxVIPDR, 80), VerdictForward)
		ack := seg(b, fxVIPDR, 80, fxFlags(0x10))
		b.ReportAllocs()
		for b.Loop() {
			run(b, r, ack, VerdictForward)
		}
	})
	b.Run("icmp-error", func(b *testing.B) {
		r := newFxRig(b, 1024, 64)
		run(b, r, seg(b, fxVIPDR, 80), VerdictForward)
		icmp := icmpAbout(b, fxVIPDR, 80)
		b.ReportAllocs()
		for b.Loop() {
			run(b, r, icmp, VerdictForward)
		}
	})
	b.Run("fragment-first", func(b *testing.B) {
		r := newFxRig(b, 1024, 64)
		fs := bigDgram(b, fxVIPDR, 1)
		id := uint16(0)
		b.ReportAllocs()
		for b.Loop() {
			id++
			setID(fs[0], id)
			run(b, r, fs[0], VerdictForward)
		}
	})
	b.Run("fragment-later", func(b *testing.B) {
		r := newFxRig(b, 1024, 64)
		fs := bigDgram(b, fxVIPDR, 1)
		run(b, r, fs[0], VerdictForward)
		b.ReportAllocs()
		for b.Loop() {
			run(b, r, fs[1], VerdictForward)
		}
	})
	b.Run("fragment-held-released", func(b *testing.B) {
		r := newFxRig(b, 1024, 64)
		fs := bigDgram(b, fxVIPDR, 1)
		id := uint16(0)
		b.ReportAllocs()
		for b.Loop() {
			id++
			if id == 0 { // IDs wrapped: let the old decisions expire
				r.clock.Advance(FragKeep + time.Second)
			}
			setID(fs[0], id)
			setID(fs[1], id)
			run(b, r, fs[1], VerdictHeld)
			run(b, r, fs[0], VerdictForward)
			if _, _, _, ok := r.p.Released(); !ok {
				b.Fatal("nothing released")
			}
			r.p.Released()
		}
	})
}

// TestHeldFragmentExpiresWithoutMoreFragments: a held fragment whose time
// ran out is dropped and counted at the next frame of any kind (Flush),
// not only at the next fragment.
func TestHeldFragmentExpiresWithoutMoreFragments(t *testing.T) {
	r := newFxRig(t, 1024, 64)
	mustHold(t, r, bigDgram(t, fxVIPDR, 12)[1])
	r.clock.Advance(FragHoldTime + 1)
	mustForward(t, r, seg(t, fxVIPDR, 80))
	var tot Totals
	tot.Add(r.c)
	if tot.Drops[DropFragTimeout] != 1 || r.p.FragStats().Held != 0 {
		t.Fatalf("timeout drops %d, held %d", tot.Drops[DropFragTimeout], r.p.FragStats().Held)
	}
}
