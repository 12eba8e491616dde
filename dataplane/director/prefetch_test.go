package director

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// frameSpec is one frame of a prefetch test batch.
type frameSpec struct {
	client        byte
	sport         uint16
	syn, ack, fin bool
}

// TestWorkerPrefetchMatchesProcess feeds the same batches to a worker with
// the pre-pass and one without, each with its own table, and requires the
// same frames out and the same counters. The batches hold the cases where
// the pre-pass's answers go stale before their frame is processed: a flow
// opened and used within one batch, a TIME_WAIT flow reopened by a SYN and
// then used in the same batch, duplicates, and frames that do not parse
// or match no service.
func TestWorkerPrefetchMatchesProcess(t *testing.T) {
	batches := [][]frameSpec{
		{ // new flows, each followed by its ACK in the same batch
			{client: 10, sport: 1000, syn: true}, {client: 10, sport: 1000, ack: true},
			{client: 11, sport: 1000, syn: true}, {client: 11, sport: 1000, ack: true}, {client: 11, sport: 1000, ack: true},
			{client: 12, sport: 1000, ack: true},                                       // never opened: dropped
			{client: 13, sport: 2000, syn: true}, {client: 13, sport: 2000, fin: true}, // SYN_RECV then TIME_WAIT
		},
		{ // the TIME_WAIT flow reopened, then used, in one batch
			{client: 10, sport: 1000, ack: true},
			{client: 13, sport: 2000, syn: true}, {client: 13, sport: 2000, ack: true}, {client: 13, sport: 2000, ack: true},
			{client: 11, sport: 1000, fin: true}, {client: 11, sport: 1000, ack: true},
		},
		{ // reopen twice within one batch
			{client: 11, sport: 1000, syn: true}, {client: 11, sport: 1000, fin: true},
			{client: 11, sport: 1000, syn: true}, {client: 11, sport: 1000, ack: true},
		},
	}
	var ws [2]*Worker
	var ports [2]*xsktest.Port
	var rigs [2]*rig
	for i := range ws {
		w, ps, r := newTestWorker(t, vs.Route, 1)
		w.noPrefetch = i == 1
		ps[0].Record = true
		ws[i], ports[i], rigs[i] = w, ps[0], r
	}
	for bi, batch := range batches {
		for i := range ws {
			for _, f := range batch {
				ports[i].Deliver(tcpFrame(t, [4]byte{198, 18, 0, f.client}, f.sport, f.syn, f.ack, f.fin, true, 0))
			}
			ports[i].Deliver([]byte{1, 2, 3}) // a runt
			if n := ws[i].Poll(); n != len(batch)+1 {
				t.Fatalf("batch %d: worker %d polled %d frames, want %d", bi, i, n, len(batch)+1)
			}
			ports[i].Complete()
		}
		on, off := ports[0].Recorded(), ports[1].Recorded()
		if len(on) != len(off) {
			t.Fatalf("batch %d: %d frames sent with the pre-pass, %d without", bi, len(on), len(off))
		}
		for j := range on {
			a, b := on[j].Frame, off[j].Frame
			if !bytes.Equal(a, b) {
				t.Fatalf("batch %d: frame %d differs:\n% x\n% x", bi, j, a, b)
			}
		}
		if a, b := snapshotCounters(rigs[0].c), snapshotCounters(rigs[1].c); a != b {
			t.Fatalf("batch %d: counters differ:\nprefetch %+v\nplain    %+v", bi, a, b)
		}
		ports[0].ResetRecorded()
		ports[1].ResetRecorded()
	}
	// The batches must have exercised the stale cases, not only hits.
	c := rigs[0].c
	if c.Drops[dataplane.DropNoConnection].Load() != 1 || c.TX.Load() < 15 {
		t.Fatalf("no_connection = %d (want 1, the never-opened ACK), tx = %d", c.Drops[dataplane.DropNoConnection].Load(), c.TX.Load())
	}
}

// counterView is the part of Counters the prefetch test compares.
type counterView struct {
	rx, rxBytes, tx, txBytes uint64
	drops                    [numDrops]uint64
}

func snapshotCounters(c *dataplane.Counters) counterView {
	v := counterView{rx: c.RX.Load(), rxBytes: c.RXBytes.Load(), tx: c.TX.Load(), txBytes: c.TXBytes.Load()}
	for i := range v.drops {
		v.drops[i] = c.Drops[i].Load()
	}
	return v
}

// BenchmarkWorkerPoll measures a worker's batch of 64 frames of
// established flows spread over a connection table of the given size,
// with the conntrack pre-pass (prefetch=on) and frame by frame
// (prefetch=off), on one table in one run.
func BenchmarkWorkerPoll(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"1M", 1_000_000}, {"10M", 10_000_000}} {
		b.Run("entries="+size.name, func(b *testing.B) {
			// Flow i is client 198.18.<i/60000>.10, port 1024 + i%60000;
			// a flow's frames differ from its client's template only in the
			// source port, which no checksum the parser verifies covers.
			// Every flow is opened with a SYN and its first ACK, so the
			// measured frames are ACKs of ESTABLISHED flows at any size
			// (opened by a SYN alone, a 10M table's measured frames were
			// mostly first ACKs: a state change and a load-counter move).
			clients := size.n/60000 + 1
			syns := make([][]byte, clients)
			acks := make([][]byte, clients)
			for c := range clients {
				syns[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, true, false, false, true, 0)
				acks[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18)
			}
			r := openEstablished(b, size.n, 1, syns, acks)
			if st := r.ct.Stats(); st.Evicted != 0 || st.Refused != 0 {
				b.Fatalf("opening %d flows: %s", size.n, st)
			}
			p := newFakePort(b, 256)
			var snap atomic.Pointer[dataplane.Snapshot]
			snap.Store(r.snap)
			w := NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &snap, r.p, r.c, nil)
			in := newInjector(b, acks, size.n, 0, 1, 1)
			for _, mode := range []string{"off", "on"} {
				b.Run("prefetch="+mode, func(b *testing.B) {
					w.noPrefetch = mode == "off"
					tx := r.c.TX.Load()
					b.ReportAllocs()
					cpu := processCPU()
					for b.Loop() {
						in.batch(p)
						w.Poll()
						p.Complete()
					}
					if got := r.c.TX.Load() - tx; got != uint64(b.N*dataplane.Batch) {
						b.Fatalf("%d of %d frames forwarded", got, b.N*dataplane.Batch)
					}
					// ns/frame: one Poll's time over its 64 frames, injection
					// into the fake port included (BenchmarkTestPort).
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*dataplane.Batch), "ns/frame")
					reportCPUPerFrame(b, cpu, b.N*dataplane.Batch)
				})
			}
		})
	}
}
