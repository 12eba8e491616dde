package director

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
	"github.com/afvs/afvs/vs"
)

// injectN delivers k ACKs of established flows to p, drawn at random from
// size flows as injectBatch draws them.
func injectN(p *xsktest.Port, acks [][]byte, x *uint64, size, k int) {
	p.DeliverBatch(k, func(umem []byte, descs []xsk.Desc) {
		for j := range descs {
			d := &descs[j]
			buf := umem[d.Addr : d.Addr+uint64(d.Len)]
			*x = *x*6364136223846793005 + 1442695040888963407
			i := int((*x >> 32) * uint64(size) >> 32)
			d.Len = uint32(copy(buf, acks[i/60000]))
			pt := 1024 + i%60000
			buf[34], buf[35] = byte(pt>>8), byte(pt)
		}
	})
}

// BenchmarkWorkerBatchSize measures the live VS/DR layout of afvs-lab
// bench (frames received on one interface, sent out of another's socket,
// so each is copied across UMEMs) at the batch sizes a live worker sees:
// a worker that keeps up with its traffic takes whatever arrived since
// its last turn, often a handful of frames, so its per-batch work (ring
// bookkeeping, counters, the kick, the connection table's stage
// latencies) is spread over few frames. The ports are in memory.
func BenchmarkWorkerBatchSize(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"1M", 1_000_000}} {
		b.Run("entries="+size.name, func(b *testing.B) {
			capacity := size.n + size.n/4
			if size.n < 100_000 {
				capacity = 2 * size.n
			}
			r := newRig(b, oneService(vs.Route, "rr", 1, 1, 1, 1), capacity)
			s := routeTo(r, 1)
			clients := size.n/60000 + 1
			acks := make([][]byte, clients)
			buf := make([]byte, 2048)
			for c := range clients {
				acks[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18)
			}
			for i := range size.n {
				f := tcpFrame(b, [4]byte{198, 18, byte(i / 60000), 10}, uint16(1024+i%60000), true, false, false, true, 0)
				copy(buf[headroom:], f)
				if v, _ := r.p.Process(s, buf, headroom, len(f)); v != dataplane.VerdictForward {
					b.Fatalf("opening flow %d: verdict %d", i, v)
				}
			}
			in, out := newFakePort(b, 256), newFakePort(b, 256)
			var snap atomic.Pointer[dataplane.Snapshot]
			snap.Store(s)
			w := NewWorker(0, -1, in, 0, []TxPort{{Port: in}, {Port: out}}, &snap, r.p, r.c, nil)
			for _, k := range []int{1, 8, dataplane.Batch} {
				b.Run(fmt.Sprintf("batch=%d", k), func(b *testing.B) {
					x := uint64(1)
					tx := r.c.TX.Load()
					b.ReportAllocs()
					cpu := processCPU()
					for b.Loop() {
						injectN(in, acks, &x, size.n, k)
						w.Poll()
						out.Complete()
					}
					if got := r.c.TX.Load() - tx; got != uint64(b.N*k) {
						b.Fatalf("%d of %d frames forwarded", got, b.N*k)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*k), "ns/frame")
					reportCPUPerFrame(b, cpu, b.N*k)
				})
			}
		})
	}
}
