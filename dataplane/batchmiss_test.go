package dataplane

import (
	"math/rand/v2"
	"testing"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/vs"
)

// TestBatchedMissGoesStale looks up one batch of frames ahead of
// processing any, as a worker does, where frames open flows that frames
// later in the same batch use: the first frames' SYNs, then more than
// Batch SYNs of other flows, then an ACK of every flow opened first. Each
// ACK's batched answer was a miss; it must be forwarded on the connection
// its SYN opened, both when the insert log still holds that SYN (the ACKs
// of the first flows) and when more than Batch inserts have pushed it out
// of the log.
func TestBatchedMissGoesStale(t *testing.T) {
	r := newRig(t, oneService(vs.Route, "rr", 1, 1), 4096)
	const first, more = 4, Batch + 8
	var frames [][]byte
	for i := range first {
		frames = append(frames, tcpFrame(t, [4]byte{198, 18, 1, byte(i)}, 1000, true, false, false, true, 0))
	}
	for i := range more {
		frames = append(frames, tcpFrame(t, [4]byte{198, 18, 2, byte(i)}, 1000, true, false, false, true, 0))
	}
	for i := range first {
		frames = append(frames, tcpFrame(t, [4]byte{198, 18, 1, byte(i)}, 1000, false, true, false, true, 0))
	}
	// One ACK right after its SYN: the log holds the SYN's insert.
	frames = append(frames, tcpFrame(t, [4]byte{198, 18, 3, 0}, 1000, true, false, false, true, 0),
		tcpFrame(t, [4]byte{198, 18, 3, 0}, 1000, false, true, false, true, 0))
	bufs := make([][]byte, len(frames))
	parsed := make([]Parsed, len(frames))
	for i, f := range frames {
		bufs[i] = chunk(f)
		r.p.Parse(bufs[i][headroom:headroom+len(f)], &parsed[i])
	}
	r.p.LookupBatch(r.snap, parsed)
	for i := range parsed {
		if !parsed[i].looked || parsed[i].hit {
			t.Fatalf("frame %d: batched lookup looked=%v hit=%v, want a miss", i, parsed[i].looked, parsed[i].hit)
		}
	}
	for i := range frames {
		if v, _ := r.p.ProcessParsed(r.snap, bufs[i], headroom, len(frames[i]), &parsed[i]); v != VerdictForward {
			t.Fatalf("frame %d of %d: verdict %d, want forward (drops %v)", i, len(frames), v, r.c.Drops[DropNoConnection].Load())
		}
	}
	if st := r.ct.Stats(); st.Inserted != first+more+1 {
		t.Fatalf("inserted %d connections, want %d", st.Inserted, first+more+1)
	}
}

// TestInsertLog checks the log's answers: a fingerprint inserted since a
// count is found, one inserted before it is not, and once more than Batch
// inserts have passed everything may have been inserted.
func TestInsertLog(t *testing.T) {
	var l insertLog
	l.add(1)
	from := l.seq
	l.add(2)
	l.add(3)
	if l.since(from, 1) {
		t.Error("since: an insert before the count was reported")
	}
	if !l.since(from, 2) || !l.since(from, 3) {
		t.Error("since: an insert after the count was missed")
	}
	for i := range Batch {
		l.add(uint64(100 + i))
	}
	if !l.since(from, 1) {
		t.Error("since: with the record overrun, a fingerprint was reported absent")
	}
	a := conntrack.Key{CPort: 1, VPort: 2, Proto: 6}
	b := a
	b.CAddr[15] = 1
	if fingerprint(&a) == fingerprint(&b) {
		t.Error("fingerprint: keys differing in the client address collide")
	}
}

// TestInsertLogFilter drives the log with random inserts and questions
// from random counts, as batches of frames ask them, against the full
// record of inserts: an insert of the fingerprint since the count must
// always be reported, and a key never inserted only rarely (the filter's
// false positives), so that a batched miss is trusted.
func TestInsertLogFilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 14))
	var l insertLog
	var all []uint64 // every insert, by number
	asked, falsePos := 0, 0
	for range 2000 {
		// A batch: LookupBatch's count, then frames that ask and insert.
		from := l.seq
		if rng.IntN(8) == 0 && l.seq > 3 {
			from = l.seq - uint64(rng.IntN(3)) // an older count, as Process paths may ask
		}
		for range 1 + rng.IntN(Batch) {
			fp := rng.Uint64N(5000)
			want := false
			for i := from; i < l.seq; i++ {
				want = want || all[i] == fp
			}
			got := l.since(from, fp)
			if want && !got {
				t.Fatalf("since(%d, %d) = false after an insert of it (seq %d)", from, fp, l.seq)
			}
			if !want && l.seq-from <= Batch {
				asked++
				if got {
					falsePos++
				}
			}
			if rng.IntN(4) != 0 {
				l.add(fp)
				all = append(all, fp)
			}
		}
	}
	if asked < 10000 || falsePos*20 > asked {
		t.Fatalf("%d of %d keys never inserted since their count were reported inserted", falsePos, asked)
	}
	t.Logf("false positives: %d of %d", falsePos, asked)
}
