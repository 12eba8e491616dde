package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/afvs/afvs/dataplane/xsk"
)

// genBatch is how many frames the generator queues per turn: the socket's
// per-kick budget, so that one Kick can move a whole batch.
const genBatch = 256

// FirstSourcePort is the source port of flow 0; flow i uses
// FirstSourcePort + i%PortsPerSource.
const FirstSourcePort = 1024

// PortsPerSource is how many distinct source ports fit above
// FirstSourcePort: the flows of one source address.
const PortsPerSource = 65536 - FirstSourcePort

// MaxFlows is the most flows the generator cycles through: 16M.
const MaxFlows = 1 << 24

// FlowSources is where the source addresses of flows past the first
// PortsPerSource begin: flow i with i/PortsPerSource = a > 0 comes from
// FlowSources + a-1 (inside 198.18.128.0/17, apart from the benchmark's
// own segments); flows of address 0 come from the frame's own source.
// Over IPv6 the frame's source keeps its upper 96 bits and takes
// FlowSources6Low + a-1 as its low 32 (2001:2::8000:0 and up for the
// benchmark's generator).
var FlowSources = netip.MustParseAddr("198.18.128.0")

// FlowSources6Low is the low 32 bits of the first IPv6 flow source.
const FlowSources6Low = 0x80000000

// flowSource is the source address (its low 32 bits over IPv6) of address
// group a > 0.
func flowSource(v6 bool, a int) [4]byte {
	var b [4]byte
	v := uint32(FlowSources6Low)
	if !v6 {
		b = FlowSources.As4()
		v = binary.BigEndian.Uint32(b[:])
	}
	binary.BigEndian.PutUint32(b[:], v+uint32(a-1))
	return b
}

// low32 is the last four bytes of a, the part the generator rewrites.
func low32(a netip.Addr) [4]byte {
	b := a.As16()
	return [4]byte(b[12:16])
}

// Generator sends one template frame from many UDP source ports as fast as
// an AF_XDP TX-only socket lets it.
//
// Every UMEM chunk holds a copy of the template from the start, so a batch
// costs only the two-byte source port (and its checksum patch) per frame:
// no copying, no allocation. A Generator is owned by one goroutine.
type Generator struct {
	// CPU, when not negative, is the CPU the harness pins the
	// generator's thread to while it runs.
	CPU      int
	port     txPort
	sock     *xsk.Socket // nil when port is a fake
	frameLen uint32
	layout   *layout // where the frame's family keeps what step rewrites
	flows    int
	// src is the low 32 bits of the template's address that flows past
	// PortsPerSource change (the whole address over IPv4).
	src [4]byte
	// reply makes the flows differ in their destination (port, then
	// address) instead of their source: the replies to another
	// generator's flows (NewReplyGenerator).
	reply  bool
	next   int // next flow index
	descs  [genBatch]xsk.Desc
	queued uint64
	sent   uint64
}

// GeneratorStats is what a run of the generator did.
type GeneratorStats struct {
	// Sent is frames the kernel completed: handed to the device.
	Sent uint64
	// Queued is frames put on the TX ring; Queued-Sent were still in
	// the kernel when the drain time ran out.
	Queued uint64
	// Elapsed is the sending time, from the first batch to the deadline.
	Elapsed time.Duration
}

// NewGenerator opens a TX-only AF_XDP socket on queue of ifindex in the
// calling thread's network namespace and fills its UMEM with f.
func NewGenerator(ifindex, queue int, f Frame, flows int) (*Generator, error) {
	opt := xsk.DefaultOptions()
	// The kernel wants a fill ring on every UMEM even when nothing is
	// received; it stays empty.
	opt.RxSize, opt.FillSize = 0, 64
	opt.Copy, opt.TxBudget = true, genBatch
	s, err := xsk.Open(ifindex, queue, opt)
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	g, err := newGenerator(s, f, flows)
	if err != nil {
		s.Close()
		return nil, err
	}
	g.sock = s
	return g, nil
}

// NewReplyGenerator is NewGenerator for the replies to another
// generator's flows: f goes from the server to the client, and flow i has
// the destination port (past PortsPerSource flows, the destination
// address too) that the other generator's flow i has as its source, so
// that a VS/NAT director finds each frame's connection.
func NewReplyGenerator(ifindex, queue int, f Frame, flows int) (*Generator, error) {
	g, err := NewGenerator(ifindex, queue, f, flows)
	if err != nil {
		return nil, err
	}
	g.setReply(f)
	return g, nil
}

func (g *Generator) setReply(f Frame) {
	g.reply, g.src = true, low32(f.Dst)
}

func newGenerator(p txPort, f Frame, flows int) (*Generator, error) {
	if flows < 1 || flows > MaxFlows {
		return nil, fmt.Errorf("generator: flows %d: must be from 1 to %d", flows, MaxFlows)
	}
	fs := p.FrameSize()
	if f.Len > fs {
		return nil, fmt.Errorf("generator: frame length %d: must fit the %d-byte UMEM chunk", f.Len, fs)
	}
	umem := p.UMEM()
	for off := 0; off+fs <= len(umem); off += fs {
		if _, err := f.Build(umem[off : off+fs]); err != nil {
			return nil, fmt.Errorf("generator: %w", err)
		}
	}
	l := &layout4
	if f.Is6() {
		l = &layout6
	}
	return &Generator{CPU: -1, port: p, frameLen: uint32(f.Len), layout: l, flows: flows, src: low32(f.Src)}, nil
}

// Step runs one turn: reap completions, take up to a batch of free chunks,
// give each the next flow's source port, queue them and kick. It returns
// how many frames it queued.
func (g *Generator) Step() (int, error) { return g.step(len(g.descs)) }

// step is Step queueing at most max frames.
func (g *Generator) step(max int) (int, error) {
	p := g.port
	g.sent += uint64(p.Complete())
	umem := p.UMEM()
	n := 0
	for ; n < len(g.descs) && n < max; n++ {
		addr, ok := p.Alloc()
		if !ok {
			break
		}
		b := umem[addr : addr+uint64(g.frameLen)]
		l := g.layout
		port := uint16(FirstSourcePort + g.next%PortsPerSource)
		if g.reply {
			l.setPort(b, l.dstPort, port)
		} else {
			l.setPort(b, l.srcPort, port)
		}
		if g.flows > PortsPerSource {
			a := g.src
			if k := g.next / PortsPerSource; k > 0 {
				a = flowSource(l.v6, k)
			}
			if g.reply {
				l.setAddr(b, l.dst, a)
			} else {
				l.setAddr(b, l.src, a)
			}
		}
		g.next++
		if g.next == g.flows {
			g.next = 0
		}
		g.descs[n] = xsk.Desc{Addr: addr, Len: g.frameLen}
	}
	q := p.Transmit(g.descs[:n])
	for _, d := range g.descs[q:n] {
		p.Release(d.Addr)
	}
	g.queued += uint64(q)
	if err := p.Kick(); err != nil {
		return q, fmt.Errorf("generator: %w", err)
	}
	return q, nil
}

// Open sends one frame of every flow, at most burst frames a millisecond
// so that a slower forwarder can keep up, and reports what it sent. A run
// after it finds every flow the forwarder took open.
func (g *Generator) Open(burst int) (GeneratorStats, error) {
	return g.OpenRange(0, g.flows, burst)
}

// OpenRange sends one frame of each flow from from to from+n-1 (modulo
// the flow count), at most burst frames a millisecond, and leaves the
// generator's cycle after them.
func (g *Generator) OpenRange(from, n, burst int) (GeneratorStats, error) {
	sent0, queued0 := g.sent, g.queued
	start := time.Now()
	g.next = from % g.flows
	target := g.queued + uint64(n)
	var err error
	for g.queued < target && err == nil {
		next := min(g.queued+uint64(burst), target)
		for g.queued < next && err == nil {
			var q int
			q, err = g.step(int(next - g.queued))
			if q == 0 && err == nil {
				time.Sleep(50 * time.Microsecond) // the ring is full: let the kernel send
			}
		}
		time.Sleep(time.Millisecond)
	}
	for end := time.Now().Add(drainTime); g.sent < g.queued && time.Now().Before(end); time.Sleep(100 * time.Microsecond) {
		g.sent += uint64(g.port.Complete())
		if kerr := g.port.Kick(); kerr != nil {
			err = errors.Join(err, kerr)
			break
		}
	}
	return GeneratorStats{Sent: g.sent - sent0, Queued: g.queued - queued0, Elapsed: time.Since(start)}, err
}

// drainTime bounds how long Run waits for the kernel to complete what is
// still on the TX ring after the deadline.
const drainTime = 100 * time.Millisecond

// Run sends for d, then drains, and reports what this run sent.
func (g *Generator) Run(d time.Duration) (GeneratorStats, error) {
	sent0, queued0 := g.sent, g.queued
	start := time.Now()
	deadline := start.Add(d)
	var err error
	for {
		if _, err = g.Step(); err != nil {
			break
		}
		if !time.Now().Before(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	for end := time.Now().Add(drainTime); g.sent < g.queued && time.Now().Before(end); {
		if kerr := g.port.Kick(); kerr != nil {
			err = errors.Join(err, kerr)
			break
		}
		if c := g.port.Complete(); c > 0 {
			g.sent += uint64(c)
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return GeneratorStats{Sent: g.sent - sent0, Queued: g.queued - queued0, Elapsed: elapsed}, err
}

// Close closes the generator's socket.
func (g *Generator) Close() error {
	if g.sock == nil {
		return nil
	}
	err := g.sock.Close()
	g.sock = nil
	return err
}
