package director

import (
	"bytes"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/dataplane/xsk/xsktest"
)

// injector delivers batches of ACKs of established flows to a port, as
// the worker benchmarks do: flow i (of size) is client 198.18.<i/60000>.10
// port 1024+i%60000, and a frame differs from its client's template only
// in the source port, which no checksum the parser verifies covers. For n
// workers with disjoint flows, a worker k's flows are those i with
// i%n == k.
//
// The flows are drawn at random beforehand, into a sequence at least as
// long as the worker's share of the flows, which the batches then walk
// and wrap around: a frame costs a sequential read of its flow instead of
// a random draw and the division that splits it into client and port.
// Every frame is written whole into its chunk (the worker rewrites
// headers in place, and the next batch may put another client's frame in
// the chunk), under one lock and one call
// (xsktest.Port.DeliverBatch), so that the injection costs little beside
// the worker.
type injector struct {
	frames [][ackLen]byte // by client: its ACK, source port 0
	seq    []uint32       // client<<16 | source port, in the order sent
	next   int            // where in seq the next batch starts
	// fill is write, made once: a function made for each batch would
	// escape to the heap through the port interface.
	fill func(umem []byte, descs []xsk.Desc)
}

// newInjector draws the flows worker k of n sees among size flows, in
// acks' frames (one per client, each ackLen bytes), from the random
// sequence that seed starts.
func newInjector(tb testing.TB, acks [][]byte, size, k, n int, seed uint64) *injector {
	in := &injector{frames: make([][ackLen]byte, len(acks))}
	in.fill = in.write
	for c, a := range acks {
		if len(a) != ackLen {
			tb.Fatalf("client %d's frame is %d bytes, want %d", c, len(a), ackLen)
		}
		in.frames[c] = [ackLen]byte(a)
	}
	m := uint64((size - k + n - 1) / n) // how many flows i%n == k has
	if m == 0 || (size-1)/60000 >= len(acks) {
		tb.Fatalf("worker %d of %d among %d flows: no flow, or more clients than the %d frames", k, n, size, len(acks))
	}
	// A whole number of batches, so that full batches use every flow
	// drawn and none wraps.
	l := max(int(m), 1<<16)
	l += -l & (dataplane.Batch - 1)
	in.seq = make([]uint32, l)
	s := seed
	for j := range in.seq {
		s = s*6364136223846793005 + 1442695040888963407
		i := int((s>>32)*m>>32)*n + k
		in.seq[j] = uint32(i/60000)<<16 | uint32(1024+i%60000)
	}
	return in
}

// batch delivers one batch, dataplane.Batch frames or as many as p has
// chunks free for.
func (in *injector) batch(p deliverer) { p.DeliverBatch(dataplane.Batch, in.fill) }

// write is the fill of a batch's DeliverBatch.
func (in *injector) write(umem []byte, descs []xsk.Desc) {
	if in.next+len(descs) > len(in.seq) {
		in.next = 0 // a short batch (few chunks free) left too few
	}
	seq := in.seq[in.next : in.next+len(descs)]
	descs = descs[:len(seq)]
	for j, e := range seq {
		d := &descs[j]
		buf := umem[d.Addr : d.Addr+ackLen]
		*(*[ackLen]byte)(buf) = in.frames[e>>16]
		buf[34], buf[35] = byte(e>>8), byte(e)
		d.Len = ackLen
	}
	if in.next += len(seq); in.next == len(in.seq) {
		in.next = 0
	}
}

// ackLen is the length of the worker benchmarks' ACK frames: Ethernet,
// IPv4 and TCP headers and 18 bytes of payload (tcpFrame's minimum-size
// frame).
const ackLen = 14 + 20 + 20 + 18

// deliverer is a port frames can be delivered to in batches, as
// xsktest.Port can.
type deliverer interface {
	DeliverBatch(n int, fill func(umem []byte, descs []xsk.Desc)) int
}

// testPort is the port of the worker benchmarks: a worker's Port that
// frames are delivered to.
type testPort interface {
	Port
	deliverer
}

// portRoundTrip does, for one batch, exactly the port work of
// BenchmarkWorkerPoll's iteration with nothing of the worker's: the same
// frame injection, then the calls Worker.Poll makes on its receiving
// socket for a batch it forwards in place (Complete, Fill, Receive,
// Transmit, Kick) and the benchmark's own Complete, through the Port
// interface as the worker makes them (TestPortRoundTripIsWorkerPollsPortWork).
// It returns how many frames went out.
func portRoundTrip(p testPort, descs []xsk.Desc, in *injector) int {
	in.batch(p)
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
			in := newInjector(b, acks, size.n, 0, 1, 1)
			sent := 0
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				sent += portRoundTrip(p, descs, in)
			}
			reportCPUPerFrame(b, cpu, b.N*dataplane.Batch)
			if sent != b.N*dataplane.Batch {
				b.Fatalf("%d of %d frames went through the port", sent, b.N*dataplane.Batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*dataplane.Batch), "ns/frame")
		})
	}
}

// BenchmarkTestPortFrames measures the part of BenchmarkTestPort that
// stands in for the NIC: the injector writing each frame into its chunk
// of the UMEM, the copy a copy-mode socket's kernel makes. It writes into
// the chunks a DeliverBatch of the same port hands out, so the same cache
// sets are written, and calls nothing of the port: BenchmarkTestPort
// minus this is the port's own calls.
func BenchmarkTestPortFrames(b *testing.B) {
	acks := [][]byte{tcpFrame(b, [4]byte{198, 18, 0, 10}, 0, false, true, false, true, 18)}
	p := newFakePort(b, 256)
	in := newInjector(b, acks, 1000, 0, 1, 1)
	var chunks []xsk.Desc
	var umem []byte
	p.DeliverBatch(dataplane.Batch, func(u []byte, descs []xsk.Desc) {
		umem, chunks = u, append([]xsk.Desc(nil), descs...)
		in.write(u, descs)
	})
	if len(chunks) != dataplane.Batch {
		b.Fatalf("the port handed out %d chunks, want %d", len(chunks), dataplane.Batch)
	}
	descs := make([]xsk.Desc, len(chunks))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		copy(descs, chunks)
		in.write(umem, descs)
	}
	reportCPUPerFrame(b, cpu, b.N*dataplane.Batch)
	for _, d := range descs {
		if d.Len != ackLen {
			b.Fatalf("a frame of %d bytes written, want %d", d.Len, ackLen)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*dataplane.Batch), "ns/frame")
}

// TestPortRoundTripMovesEveryFrame checks that the port benchmark's batch
// really receives and transmits every frame it injects, and leaves every
// frame free again, so its cost is a whole batch's port work.
func TestPortRoundTripMovesEveryFrame(t *testing.T) {
	const frames = 256
	p := newFakePort(t, frames)
	acks := [][]byte{tcpFrame(t, [4]byte{198, 18, 0, 10}, 0, false, true, false, true, 18)}
	descs := make([]xsk.Desc, dataplane.Batch)
	in := newInjector(t, acks, 1000, 0, 1, 1)
	for range 3 {
		if got := portRoundTrip(p, descs, in); got != dataplane.Batch {
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

// callLog is a port that logs the calls made on it and what they
// returned.
type callLog struct {
	*xsktest.Port
	calls []string
}

func (c *callLog) log(format string, args ...any) {
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
}

func (c *callLog) DeliverBatch(n int, fill func([]byte, []xsk.Desc)) int {
	q := c.Port.DeliverBatch(n, fill)
	c.log("DeliverBatch(%d) = %d", n, q)
	return q
}
func (c *callLog) Fill() int     { n := c.Port.Fill(); c.log("Fill() = %d", n); return n }
func (c *callLog) Complete() int { n := c.Port.Complete(); c.log("Complete() = %d", n); return n }
func (c *callLog) Receive(out []xsk.Desc) int {
	n := c.Port.Receive(out)
	c.log("Receive(%d) = %d", len(out), n)
	return n
}
func (c *callLog) Release(addr uint64) { c.Port.Release(addr); c.log("Release") }
func (c *callLog) Alloc() (uint64, bool) {
	a, ok := c.Port.Alloc()
	c.log("Alloc() = %v", ok)
	return a, ok
}
func (c *callLog) Transmit(ds []xsk.Desc) int {
	n := c.Port.Transmit(ds)
	c.log("Transmit(%d) = %d", len(ds), n)
	return n
}
func (c *callLog) Kick() error { err := c.Port.Kick(); c.log("Kick() = %v", err); return err }
func (c *callLog) TxPending() bool {
	ok := c.Port.TxPending()
	c.log("TxPending() = %v", ok)
	return ok
}
func (c *callLog) Wait(d time.Duration) error { c.log("Wait"); return c.Port.Wait(d) }

// TestPortRoundTripIsWorkerPollsPortWork logs the port calls of
// BenchmarkWorkerPoll's iteration (a batch injected, Worker.Poll, the
// benchmark's Complete) at 1K flows and those of portRoundTrip, on the
// same port, and requires the same calls with the same answers, so that
// BenchmarkWorkerPoll minus BenchmarkTestPort is the worker's own work.
func TestPortRoundTripIsWorkerPollsPortWork(t *testing.T) {
	const size = 1000
	syns, acks := [][]byte{tcpFrame(t, [4]byte{198, 18, 0, 10}, 0, true, false, false, true, 0)},
		[][]byte{tcpFrame(t, [4]byte{198, 18, 0, 10}, 0, false, true, false, true, 18)}
	r := openEstablished(t, size, 1, syns, acks)
	p := &callLog{Port: newFakePort(t, 256)}
	var snap atomic.Pointer[dataplane.Snapshot]
	snap.Store(r.snap)
	w := NewWorker(0, -1, p, 0, []TxPort{{Port: p}}, &snap, r.p, r.c, nil)
	in := newInjector(t, acks, size, 0, 1, 1)
	descs := make([]xsk.Desc, dataplane.Batch)
	for range 3 { // past the first batches' Completes of nothing
		in.batch(p)
		w.Poll()
		p.Complete()
		portRoundTrip(p, descs, in)
	}
	p.calls = nil
	in.batch(p)
	w.Poll()
	p.Complete()
	poll := p.calls
	p.calls = nil
	portRoundTrip(p, descs, in)
	if !slices.Equal(poll, p.calls) {
		t.Fatalf("BenchmarkWorkerPoll's iteration calls the port\n  %q\nportRoundTrip\n  %q", poll, p.calls)
	}
	if want := fmt.Sprintf("Transmit(%d) = %[1]d", dataplane.Batch); !slices.Contains(poll, want) {
		t.Fatalf("the iteration's calls %q lack %q: not a whole batch forwarded in place", poll, want)
	}
}

// TestInjectorDrawsItsShareOfTheFlows runs the injector of worker 1 of 2
// among 130000 flows through more batches than its sequence holds, with
// the worker's in-place rewrites of the MACs and TTL simulated on every
// frame before it goes out, and requires every frame to be its client's
// ACK, unchanged but for the source port, of a flow i with i%2 == 1; the
// flows to spread over the share (most distinct, from both ends of it);
// the sequence to repeat after it wraps; and no allocation.
func TestInjectorDrawsItsShareOfTheFlows(t *testing.T) {
	const size = 130_000
	clients := size/60000 + 1
	acks := make([][]byte, clients)
	for c := range clients {
		acks[c] = tcpFrame(t, [4]byte{198, 18, byte(c), 10}, 0, false, true, false, true, 18)
	}
	in := newInjector(t, acks, size, 1, 2, 7)
	batches := len(in.seq) / dataplane.Batch
	p := newFakePort(t, 256)
	descs := make([]xsk.Desc, dataplane.Batch)
	seen := make(map[int]int)
	var first []int
	lo, hi := size, 0
	for b := range batches + 1 {
		in.batch(p)
		n := p.Receive(descs)
		if n != dataplane.Batch {
			t.Fatalf("batch %d: %d frames received, want %d", b, n, dataplane.Batch)
		}
		for j, d := range descs[:n] {
			f := p.Frame(d)
			if b == 0 && j == 0 {
				pk := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
				tcp, _ := pk.Layer(layers.LayerTypeTCP).(*layers.TCP)
				ip, _ := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if tcp == nil || ip == nil || !tcp.ACK || tcp.SYN || tcp.DstPort != 80 || tcp.SrcPort < 1024 || !ip.DstIP.Equal(vip.AsSlice()) {
					t.Fatalf("the first frame is not a client's ACK to the VIP: %v", pk)
				}
			}
			c, pt := int(f[28]), int(f[34])<<8|int(f[35])
			if c >= clients || !bytes.Equal(f[:34], acks[c][:34]) || !bytes.Equal(f[36:], acks[c][36:]) || pt < 1024 {
				t.Fatalf("batch %d, frame %d is not client %d's ACK with another source port:\n% x\n% x", b, j, c, f, acks[c])
			}
			i := c*60000 + pt - 1024
			if i%2 != 1 || i >= size {
				t.Fatalf("batch %d, frame %d: flow %d is not worker 1's of 2 among %d", b, j, i, size)
			}
			switch {
			case b == 0:
				first = append(first, i)
			case b == batches && first[j] != i:
				t.Fatalf("after the wrap, frame %d is flow %d, want %d as in the first batch", j, i, first[j])
			}
			seen[i]++
			lo, hi = min(lo, i), max(hi, i)
			// The worker's rewrites, which the next frame in this chunk
			// must not see.
			copy(f[:12], "rewritten!!!")
			f[22]--
		}
		if p.Transmit(descs[:n]) != n || p.Kick() != nil || p.Complete() != n {
			t.Fatalf("batch %d did not go out whole", b)
		}
	}
	if draws := (batches + 1) * dataplane.Batch; len(seen) < draws/2 || lo > 1000 || hi < size-1000 {
		t.Fatalf("%d distinct flows in %d frames, from %d to %d: not spread over the share", len(seen), draws, lo, hi)
	}
	if a := testing.AllocsPerRun(100, func() { portRoundTrip(p, descs, in) }); a != 0 {
		t.Fatalf("%v allocations per batch through the port", a)
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
