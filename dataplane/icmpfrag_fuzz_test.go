package dataplane

import (
	"testing"
	"time"
)

// FuzzFragmentsAndICMP drives one processor through a sequence of
// fragments, ICMP errors and segments, chosen by ops, plus raw (any
// bytes) when an op selects it, with the clock moving and held fragments
// collected or not. Nothing may panic; the fragment table stays within
// its bounds; and every frame is accounted for exactly once: forwarded
// (directly or released after its first fragment), counted as a drop or
// parse error, or still held.
func FuzzFragmentsAndICMP(f *testing.F) {
	f.Add([]byte{1, 0, 2, 64, 3, 4, 5, 6}, []byte{})
	f.Add([]byte{2, 1, 0, 64, 32, 32, 8, 9, 10, 11, 12}, icmpAbout(f, fxVIPDR, 80))
	f.Add([]byte{5, 4, 3, 64, 33, 6, 7, 64, 255}, bigDgram(f, fxVIPTUN, 11)[1])
	r := newFxRig(f, 1024, 64)
	var pool [][]byte
	pool = append(pool, bigDgram(f, fxVIPDR, 1)...)  // 0-2
	pool = append(pool, bigDgram(f, fxVIPTUN, 2)...) // 3-5
	pool = append(pool, bigDgram(f, fxVIPDR, 3)...)  // 6-8
	pool = append(pool,
		seg(f, fxVIPDR, 80), seg(f, fxVIPTUN, 80), // 9, 10
		icmpAbout(f, fxVIPDR, 80), icmpAbout(f, fxVIPTUN, 80), // 11, 12
		icmpAbout(f, fxVIPDR, 80, icmpCport(40001)),                   // 13: unmatched
		dgram(f, fxVIPDR, 53), icmpAbout(f, fxVIPDR, 53, quoting(17)), // 14, 15
	)
	buf := make([]byte, maxFrame)
	f.Fuzz(func(t *testing.T, ops []byte, raw []byte) {
		if len(raw) > maxFrame-256 {
			raw = raw[:maxFrame-256]
		}
		var in, out uint64
		var before Totals
		before.Add(r.c)
		heldBefore := r.p.FragStats().Held
		for _, op := range ops {
			if op&64 != 0 {
				r.clock.Advance(time.Duration(op&63) * 20 * time.Millisecond)
				continue
			}
			frame := raw
			if i := int(op & 31); i < len(pool) {
				frame = pool[i]
			}
			copy(buf[256:], frame)
			in++
			v, o := r.p.Process(r.snap, buf, 256, len(frame))
			if v == VerdictForward {
				out++
				if o.Off < 0 || o.Len <= 0 || o.Off+o.Len > len(buf) {
					t.Fatalf("forwarded frame at %d+%d outside its buffer", o.Off, o.Len)
				}
			}
			if op&32 == 0 {
				for {
					b, _, _, ok := r.p.Released()
					if !ok {
						break
					}
					if len(b) == 0 {
						t.Fatal("released an empty frame")
					}
					out++
				}
			}
			if st := r.p.FragStats(); st.Held > FragHeld || st.Decisions > FragSlots {
				t.Fatalf("fragment table out of bounds: %+v", st)
			}
		}
		// Collect or drop what the last frame released, so the tally closes.
		for {
			if _, _, _, ok := r.p.Released(); !ok {
				break
			}
			out++
		}
		var after Totals
		after.Add(r.c)
		var counted uint64
		for i := range after.Drops {
			counted += after.Drops[i] - before.Drops[i]
		}
		for i := range after.Parse {
			counted += after.Parse[i] - before.Parse[i]
		}
		held := r.p.FragStats().Held
		if in+uint64(heldBefore) != out+counted+uint64(held) {
			t.Fatalf("%d frames in (+%d held before): %d out, %d counted, %d held", in, heldBefore, out, counted, held)
		}
	})
}
