package director

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// newConnFrames makes SYN frames of connections no table has seen: flow
// k is client 198.18.0.0 + k/60000 (over 198.18.0.0/15), port 1024 +
// k%60000. It patches one template in place (and its IPv4 checksum, which
// the parser verifies), so making a frame allocates nothing.
type newConnFrames struct {
	f []byte
	k int
}

func newNewConnFrames(t testing.TB, first int) *newConnFrames {
	return &newConnFrames{f: tcpFrame(t, [4]byte{198, 18, 0, 0}, 0, true, false, false, true, 0), k: first}
}

// next returns the next flow's frame; it stays valid until the next call.
func (g *newConnFrames) next() []byte {
	c, port := g.k/60000, 1024+g.k%60000
	g.k++
	f := g.f
	const ip = 14
	f[ip+13], f[ip+14], f[ip+15] = byte(18+(c>>16)&1), byte(c>>8), byte(c)
	binary.BigEndian.PutUint16(f[ip+20:], uint16(port))
	f[ip+10], f[ip+11] = 0, 0
	binary.BigEndian.PutUint16(f[ip+10:], ^header.Checksum(f[ip:ip+20], 0))
	return f
}

// BenchmarkWorkerNewConns measures new connections per worker on the
// in-memory port: every frame of every batch is the SYN of a connection
// never seen, which the worker parses, schedules (rr over four real
// servers), inserts into a table of 1M connections and forwards. The
// table holds 1M established connections at the start, with a quarter of
// headroom; once the headroom is used, each insertion evicts. ns/conn is
// one Poll's time over its 64 frames, frame making and the port included
// (BenchmarkTestPort is the port alone).
func BenchmarkWorkerNewConns(b *testing.B) {
	const n = 1_000_000
	r := newRig(b, oneService(vs.Route, "rr", 1, 1, 1, 1), n+n/4)
	g := newNewConnFrames(b, 0)
	buf := make([]byte, 2048)
	for range n {
		f := g.next()
		copy(buf[headroom:], f)
		if v, _ := r.p.Process(r.snap, buf, headroom, len(f)); v != dataplane.VerdictForward {
			b.Fatalf("opening flow %d: verdict %d", g.k, v)
		}
	}
	if st := r.ct.Stats(); st.Entries != n || st.Evicted != 0 || st.Refused != 0 {
		b.Fatalf("opening %d flows: %s", n, st)
	}
	p := newFakePort(b, 256)
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	w := NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &snap, r.p, r.c, nil)
	st0, tx := r.ct.Stats(), r.c.TX.Load()
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		for range dataplane.Batch {
			p.Deliver(g.next())
		}
		w.Poll()
		p.Complete()
	}
	conns := b.N * dataplane.Batch
	st := r.ct.Stats()
	if got := r.c.TX.Load() - tx; got != uint64(conns) {
		b.Fatalf("%d of %d SYNs forwarded", got, conns)
	}
	if got := st.Inserted - st0.Inserted; got != uint64(conns) {
		b.Fatalf("%d connections inserted for %d SYNs of new flows", got, conns)
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(conns)
	b.ReportMetric(ns, "ns/conn")
	b.ReportMetric(1e9/ns, "conns/s")
	b.ReportMetric(float64(st.Evicted-st0.Evicted)/float64(conns), "evictions/conn")
	reportCPUPerFrame(b, cpu, conns)
}
