package director

import (
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
)

// injectBatch delivers one batch of ACKs of established flows to p, as
// the worker benchmarks do: flow i (of size) is client 198.18.<i/60000>.10
// port 1024+i%60000, and a frame differs from its client's template in
// acks only in the source port, which no checksum the parser verifies
// covers. Flows are drawn at random from those i with i%n == k, so that n
// workers get disjoint flows: a random j below their count, i = j*n+k,
// with no division per frame. The frames are written straight into the
// port's chunks under one lock and one call (xsktest.Port.DeliverBatch),
// so that the injection costs little beside the worker.
func injectBatch(p *xsktest.Port, acks [][]byte, x *uint64, size, k, n int) {
	m := uint64((size - k + n - 1) / n) // how many flows i%n == k has
	p.DeliverBatch(dataplane.Batch, func(umem []byte, descs []xsk.Desc) {
		s := *x
		for j := range descs {
			d := &descs[j]
			buf := umem[d.Addr : d.Addr+uint64(d.Len)]
			s = s*6364136223846793005 + 1442695040888963407
			i := int((s>>32)*m>>32)*n + k
			if tpl := acks[i/60000]; len(tpl) == ackLen {
				// Copies of constant size through locals are a few
				// moves, not a call of memmove; in whole 16- and 8-byte
				// pieces, so that no load straddles two stores.
				head, tail := [64]byte(tpl), [ackLen - 64]byte(tpl[64:])
				*(*[64]byte)(buf) = head
				*(*[ackLen - 64]byte)(buf[64:]) = tail
				d.Len = ackLen
			} else {
				d.Len = uint32(copy(buf, tpl))
			}
			pt := 1024 + i%60000
			buf[34], buf[35] = byte(pt>>8), byte(pt)
		}
		*x = s
	})
}

// ackLen is the length of the worker benchmarks' ACK frames: Ethernet,
// IPv4 and TCP headers and 18 bytes of payload (tcpFrame's minimum-size
// frame).
const ackLen = 14 + 20 + 20 + 18

// portRoundTrip does, for one batch, exactly the port work of
// BenchmarkWorkerPoll's iteration with nothing of the worker's: the same
// frame injection, then the calls Worker.Poll makes on its receiving
// socket for a batch it forwards in place (Complete, Fill, Receive,
// Transmit, Kick) and the benchmark's own Complete. It returns how many
// frames went out.
func portRoundTrip(p *xsktest.Port, descs []xsk.Desc, acks [][]byte, n int, x *uint64) int {
	injectBatch(p, acks, x, n, 0, 1)
	p.Complete()
	p.Fill()
	got := p.Receive(descs)
	sent := p.Transmit(descs[:got])
	p.Kick()
	p.Complete()
	return sent
}

// BenchmarkTestPort measures the in-memory test port alone, per frame, so
// that BenchmarkWorkerPoll's ns/frame minus this is the worker's own work.
// The flow count only changes which frame template is picked, as in
// BenchmarkWorkerPoll.
func BenchmarkTestPort(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1K", 1_000}, {"10M", 10_000_000}} {
		b.Run("entries="+size.name, func(b *testing.B) {
			clients := size.n/60000 + 1
			acks := make([][]byte, clients)
			for c := range clients {
				acks[c] = tcpFrame(b, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18)
			}
			p := newFakePort(b, 256)
			descs := make([]xsk.Desc, dataplane.Batch)
			x := uint64(1)
			sent := 0
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				sent += portRoundTrip(p, descs, acks, size.n, &x)
			}
			reportCPUPerFrame(b, cpu, b.N*dataplane.Batch)
			if sent != b.N*dataplane.Batch {
				b.Fatalf("%d of %d frames went through the port", sent, b.N*dataplane.Batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*dataplane.Batch), "ns/frame")
		})
	}
}

// TestPortRoundTripMovesEveryFrame checks that the port benchmark's batch
// really receives and transmits every frame it injects, and leaves every
// frame free again, so its cost is a whole batch's port work.
func TestPortRoundTripMovesEveryFrame(t *testing.T) {
	const frames = 256
	p := newFakePort(t, frames)
	acks := [][]byte{tcpFrame(t, [4]byte{198, 18, 0, 10}, 0, false, true, false, true, 18)}
	descs := make([]xsk.Desc, dataplane.Batch)
	x := uint64(1)
	for range 3 {
		if got := portRoundTrip(p, descs, acks, 1000, &x); got != dataplane.Batch {
			t.Fatalf("%d frames went out, want %d", got, dataplane.Batch)
		}
	}
	if n := p.Receive(descs); n != 0 {
		t.Fatalf("%d frames still waiting to be received", n)
	}
	if n := p.Complete(); n != 0 {
		t.Fatalf("%d frames still waiting for completion", n)
	}
	for i := range frames {
		if _, ok := p.Alloc(); !ok {
			t.Fatalf("only %d of %d frames are free after the round trips", i, frames)
		}
	}
	if _, ok := p.Alloc(); ok {
		t.Fatalf("more than %d frames free", frames)
	}
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPUPerFrame reports the process's CPU time since start over frames
// as cpu-ns/frame. On a shared machine, wall time per frame also counts the
// time other processes held the CPU; CPU time counts only this one's (its
// other threads included, which a benchmark that allocates nothing keeps
// idle).
func reportCPUPerFrame(b *testing.B, start time.Duration, frames int) {
	if frames > 0 {
		b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(frames), "cpu-ns/frame")
	}
}
