package director

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xsk"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/plainstore"
)

// Port is what a worker needs from an AF_XDP socket. *xsk.Socket implements
// it; tests use an in-memory fake. A Port has one owner goroutine unless it
// is wrapped by a shared TX port.
type Port interface {
	Fill() int
	Receive(out []xsk.Desc) int
	Release(addr uint64)
	Alloc() (uint64, bool)
	Transmit(descs []xsk.Desc) int
	Kick() error
	Complete() int
	Wait(timeout time.Duration) error
	UMEM() []byte
	FrameSize() int
	Headroom() int
}

// TxPort is an egress socket as a worker sees it. Ports on the worker's own
// receiving socket are exclusive; sockets on another interface may be shared
// by several workers when that interface has fewer queues than there are
// workers, and then Mu serialises them (only on the cross-interface path).
type TxPort struct {
	Port Port
	Mu   *sync.Mutex
}

// Worker runs one RX queue.
type Worker struct {
	Dev   string
	Queue int
	CPU   int // -1: not pinned
	rx    Port
	slot  int                      // ingress slot
	tx    []TxPort                 // the TX table of the current batch
	txt   atomic.Pointer[[]TxPort] // the TX table in force (SetTX)
	polls atomic.Uint64            // odd while Poll runs
	snap  *atomic.Pointer[dataplane.Snapshot]
	proc  *dataplane.Processor
	C     *dataplane.Counters

	descs   [dataplane.Batch]xsk.Desc
	parsed  [dataplane.Batch]dataplane.Parsed // the batch after the pre-pass
	local   []xsk.Desc                        // frames for the receiving socket's own TX ring
	remote  [][]xsk.Desc                      // by slot: frames to copy to another socket
	stop    atomic.Bool
	pollCfg atomic.Pointer[PollConfig] // the mode in force (SetPoll)
	applied *PollConfig                // the mode the socket options follow
	busy    atomic.Pointer[xsk.BusyPoll]
	sleeps  atomic.Uint64 // waits in poll(2)
	tid     atomic.Int32  // the worker's OS thread, once Run has started
	pinErr  error
	pinHook func(cpu int) error
	// localStack and localSteer are the local node's paths (local.go):
	// the director's stack and the ingress interface's steering program.
	localStack *atomic.Pointer[localBox]
	localSteer Steering
	// noPrefetch makes Poll process frame by frame without the pre-pass,
	// so tests and benchmarks can compare the two paths.
	noPrefetch bool

	// txFrames and txBytes are the worker's totals of C.TX and C.TXBytes,
	// of which it is the only writer: countTX publishes them with plain
	// stores instead of two locked adds per batch.
	txFrames, txBytes uint64
	// sending: a batch handed frames to a TX ring since the last idle turn
	// found every ring drained (kickIdle).
	sending bool
}

// NewWorker makes a worker for rx, whose interface has slot ingress. tx is
// indexed by slot; tx[ingress] must be rx itself.
func NewWorker(queue, cpu int, rx Port, ingress int, tx []TxPort, snap *atomic.Pointer[dataplane.Snapshot], proc *dataplane.Processor, c *dataplane.Counters, pin func(cpu int) error) *Worker {
	w := &Worker{Queue: queue, CPU: cpu, rx: rx, slot: ingress, tx: tx, snap: snap, proc: proc, C: c, pinHook: pin}
	w.SetPoll(DefaultPoll())
	w.txFrames, w.txBytes = c.TX.Load(), c.TXBytes.Load()
	proc.SetBatching(true) // Poll publishes the counters once per batch
	w.local = make([]xsk.Desc, 0, 2*dataplane.Batch)
	w.SetTX(tx)
	w.growRemote()
	return w
}

// SetTX replaces the worker's TX table (indexed by slot; tx[ingress] must
// be the receiving socket) from any goroutine. The worker takes it up at
// its next batch; once Quiet has returned, no batch uses the old table.
func (w *Worker) SetTX(tx []TxPort) { w.txt.Store(&tx) }

// Quiet waits until the worker is not in the middle of a batch that
// started before it was called, so that a TX port SetTX removed may be
// closed.
func (w *Worker) Quiet() {
	v := w.polls.Load()
	if v%2 == 0 {
		return
	}
	for w.polls.Load() == v {
		time.Sleep(50 * time.Microsecond)
	}
}

// growRemote gives every slot of the TX table a queue; it allocates only
// when the table has grown.
func (w *Worker) growRemote() {
	for len(w.remote) < len(w.tx) {
		w.remote = append(w.remote, make([]xsk.Desc, 0, dataplane.Batch))
	}
}

// Stop asks the worker loop to return after its current batch.
func (w *Worker) Stop() { w.stop.Store(true) }

// Poll runs one turn: reap completions, refill, receive a batch, process it,
// transmit. It returns the number of frames received. Run calls it in a
// loop; tests call it directly.
func (w *Worker) Poll() int {
	// The odd mark is a locked add, a full fence: the TX table is read
	// below only once Quiet can see that a batch runs. The even mark
	// needs no fence (Quiet only waits for the change), so it is a plain
	// store; on amd64 nothing of the batch moves after it.
	v := w.polls.Add(1)
	if c := w.pollCfg.Load(); c != w.applied {
		w.applyPoll(c)
	}
	w.tx = *w.txt.Load()
	if len(w.remote) < len(w.tx) {
		w.growRemote()
	}
	n := w.poll()
	plainstore.Store64(&w.polls, v+1)
	return n
}

func (w *Worker) poll() int {
	w.rx.Complete()
	w.rx.Fill()
	n := w.rx.Receive(w.descs[:])
	if n == 0 {
		if w.sending {
			w.sending = w.kickIdle()
		}
		return 0
	}
	snap := w.snap.Load()
	umem := w.rx.UMEM()
	fs := uint64(w.rx.FrameSize())
	got := n
	n = w.sanitize(n, uint64(len(umem)), fs)
	if n == 0 {
		return got
	}
	if w.noPrefetch {
		for i := 0; i < n; i++ {
			d := w.descs[i]
			base := d.Addr &^ (fs - 1)
			v, out := w.proc.Process(snap, umem[base:base+fs], int(d.Addr-base), int(d.Len))
			w.dispatch(d, base, v, out)
		}
		w.flush()
		return n
	}
	// The pre-pass: parse the whole batch, then look up all its
	// connections at once, so that the connection table's cache misses
	// (two dependent DRAM round trips per frame at millions of entries)
	// overlap instead of stalling each frame in turn.
	for i := 0; i < min(n, parseAhead); i++ {
		header.Prefetch(umem[w.descs[i].Addr:])
	}
	for i := 0; i < n; i++ {
		if i+parseAhead < n {
			header.Prefetch(umem[w.descs[i+parseAhead].Addr:])
		}
		d := w.descs[i]
		base := d.Addr &^ (fs - 1)
		off := d.Addr - base
		w.proc.Parse(umem[base : base+fs][off:off+uint64(d.Len)], &w.parsed[i])
	}
	w.proc.LookupBatch(snap, w.parsed[:n])
	for i := 0; i < min(n, insertAhead); i++ {
		w.proc.PrefetchInsert(&w.parsed[i])
	}
	for i := 0; i < n; i++ {
		if i+insertAhead < n {
			w.proc.PrefetchInsert(&w.parsed[i+insertAhead])
		}
		d := w.descs[i]
		base := d.Addr &^ (fs - 1)
		v, out := w.proc.ProcessParsed(snap, umem[base:base+fs], int(d.Addr-base), int(d.Len), &w.parsed[i])
		w.dispatch(d, base, v, out)
	}
	w.flush()
	return n
}

// parseAhead is how many frames ahead of the one it parses the worker
// starts loading a frame's headers (header.Prefetch).
const parseAhead = 4

// insertAhead is how many frames ahead of the one it processes the worker
// starts loading the table lines a new connection's insert will touch
// (Processor.PrefetchInsert): far enough for the lines to arrive while the
// frames in between are processed, near enough that they are still in the
// cache when their insert runs.
const insertAhead = 3

// dispatch queues a processed frame for transmission or releases it.
func (w *Worker) dispatch(d xsk.Desc, base uint64, v dataplane.Verdict, out dataplane.Out) {
	switch v {
	case dataplane.VerdictForward:
		nd := xsk.Desc{Addr: base + uint64(out.Off), Len: uint32(out.Len)}
		if !w.queue(out.Slot, nd) {
			w.C.Drops[dataplane.DropNoEgress].Add(1)
			w.rx.Release(d.Addr)
			return
		}
		if out.Second {
			// The second fragment goes in a fresh frame of the receiving
			// socket, after the first on the same queue.
			if sd, ok := w.fresh(w.proc.Second()); ok {
				w.queue(out.Slot, sd)
			}
		}
		if w.proc.HasReleased() {
			w.releaseHeld()
		}
	case dataplane.VerdictReply:
		w.rx.Release(d.Addr)
		w.sendReply(w.proc.Reply())
	case dataplane.VerdictLocal:
		w.deliverLocal(d, base, out)
	default:
		w.rx.Release(d.Addr)
	}
}

// releaseHeld sends the fragments the processor held until the first
// fragment it just forwarded came, each in a fresh frame of the receiving
// socket, after that first fragment.
func (w *Worker) releaseHeld() {
	for {
		b, second, slot, ok := w.proc.Released()
		if !ok {
			return
		}
		if slot == dataplane.LocalSlot {
			w.deliverHeldLocal(b)
			continue
		}
		d, ok := w.fresh(b)
		if !ok {
			continue
		}
		if !w.queue(slot, d) {
			w.C.Drops[dataplane.DropNoEgress].Add(1)
			w.rx.Release(d.Addr)
			continue
		}
		if second != nil {
			if sd, ok := w.fresh(second); ok {
				w.queue(slot, sd)
			}
		}
	}
}

// deliverHeldLocal gives a released fragment's IPv4 packet for a local
// real server to the director's own stack, as deliverLocal does a frame's.
func (w *Worker) deliverHeldLocal(pkt []byte) {
	box := w.localStack.Load()
	if box == nil || box.Deliver(pkt) != nil {
		w.C.Drops[dataplane.DropLocalDeliver].Add(1)
		return
	}
	w.C.Local.Delivered.Add(1)
}

// sanitize drops descriptors that do not lie inside one chunk of the UMEM.
// The kernel never produces them, but a frame that would make the worker
// slice out of bounds must be a counted drop, never a crash.
func (w *Worker) sanitize(n int, umemLen, fs uint64) int {
	k := 0
	for i := 0; i < n; i++ {
		d := w.descs[i]
		base := d.Addr &^ (fs - 1)
		if d.Addr >= umemLen || d.Addr-base+uint64(d.Len) > fs {
			w.C.Drops[dataplane.DropBadDescriptor].Add(1)
			if d.Addr < umemLen {
				w.rx.Release(d.Addr)
			}
			continue
		}
		w.descs[k] = d
		k++
	}
	return k
}

// queue puts a frame of the receiving socket on the transmit queue for
// slot, reporting false if the slot has no way out.
func (w *Worker) queue(slot int, d xsk.Desc) bool {
	switch {
	case slot == w.slot:
		w.local = append(w.local, d)
	case slot < len(w.tx) && w.tx[slot].Port != nil:
		w.remote[slot] = append(w.remote[slot], d)
	default:
		return false
	}
	return true
}

// sendReply copies an ICMP reply into a fresh frame of the receiving socket.
func (w *Worker) sendReply(b []byte) {
	if d, ok := w.fresh(b); ok {
		w.local = append(w.local, d)
	}
}

// fresh copies b into a free frame of the receiving socket, counting a
// drop when there is none (or b does not fit one).
func (w *Worker) fresh(b []byte) (xsk.Desc, bool) {
	fs := uint64(w.rx.FrameSize())
	if uint64(len(b)) > fs {
		w.C.Drops[dataplane.DropNoFreeFrame].Add(1)
		return xsk.Desc{}, false
	}
	addr, ok := w.rx.Alloc()
	if !ok {
		w.C.Drops[dataplane.DropNoFreeFrame].Add(1)
		return xsk.Desc{}, false
	}
	off := uint64(w.rx.Headroom())
	if off+uint64(len(b)) > fs {
		off = 0
	}
	base := addr &^ (fs - 1)
	copy(w.rx.UMEM()[base+off:], b)
	return xsk.Desc{Addr: base + off, Len: uint32(len(b))}, true
}

// flush transmits what the batch produced and counts what could not go.
func (w *Worker) flush() {
	w.proc.Flush()
	if len(w.local) > 0 {
		k := w.rx.Transmit(w.local)
		for _, d := range w.local[k:] {
			w.C.Drops[dataplane.DropTxRingFull].Add(1)
			w.rx.Release(d.Addr)
		}
		w.countTX(w.local[:k])
		w.kick(w.rx)
		w.sending = true
		w.local = w.local[:0]
	}
	for slot, q := range w.remote {
		if len(q) == 0 {
			continue
		}
		w.copyOut(w.tx[slot], q)
		releaseAll(w.rx, q)
		w.remote[slot] = q[:0]
	}
}

// copyOut copies frames of the receiving socket's UMEM into frames of
// another interface's socket and sends them. AF_XDP sockets on different
// devices do not share a UMEM here, so one copy per frame is the price of
// the two-interface layout.
func (w *Worker) copyOut(tp TxPort, q []xsk.Desc) {
	if tp.Mu != nil {
		tp.Mu.Lock()
		defer tp.Mu.Unlock()
	}
	p := tp.Port
	p.Complete()
	src := w.rx.UMEM()
	dst := p.UMEM()
	fs := uint64(p.FrameSize())
	hr := uint64(p.Headroom())
	out := w.descs[:0] // the RX batch is finished; reuse its array
	for _, d := range q {
		addr, ok := p.Alloc()
		if !ok {
			w.C.Drops[dataplane.DropNoFreeFrame].Add(1)
			continue
		}
		base := addr &^ (fs - 1)
		off := hr
		if off+uint64(d.Len) > fs {
			off = 0
		}
		copy(dst[base+off:base+off+uint64(d.Len)], src[d.Addr:d.Addr+uint64(d.Len)])
		out = append(out, xsk.Desc{Addr: base + off, Len: d.Len})
	}
	k := p.Transmit(out)
	for _, d := range out[k:] {
		w.C.Drops[dataplane.DropTxRingFull].Add(1)
		p.Release(d.Addr)
	}
	w.countTX(out[:k])
	w.kick(p)
	w.sending = true
}

// txPender is a port that can say whether frames still wait on its TX
// ring (xsk.Socket and xsktest.Port can).
type txPender interface{ TxPending() bool }

// kickIdle kicks every TX ring the worker sends on, at a turn that found
// nothing to receive, and reports whether any still holds frames. A Kick
// that finds the device busy (a copy-mode veth whose peer's queue is full
// answers EAGAIN) leaves frames on the ring, and only another Kick sends
// them: without this, the last frames of a burst would wait for the next
// frame to arrive, however long that takes.
func (w *Worker) kickIdle() bool {
	w.kick(w.rx)
	w.eachTx(func(p Port) bool { w.kick(p); return false })
	// Asked only once every ring was kicked: the worker's own socket may
	// also be one of its TX slots.
	return pending(w.rx) || w.eachTx(pending)
}

// eachTx calls f on every TX slot's port, under the slot's lock, and
// reports whether f was true for any.
func (w *Worker) eachTx(f func(Port) bool) bool {
	hit := false
	for _, tp := range w.tx {
		if tp.Port == nil {
			continue
		}
		if tp.Mu != nil {
			tp.Mu.Lock()
		}
		hit = f(tp.Port) || hit
		if tp.Mu != nil {
			tp.Mu.Unlock()
		}
	}
	return hit
}

// pending reports whether frames still wait on p's TX ring; a port that
// cannot tell counts as drained.
func pending(p Port) bool {
	tp, ok := p.(txPender)
	return ok && tp.TxPending()
}

// kick asks the kernel to send what p's TX ring holds. The socket itself
// counts a kernel that took nothing (the frames stay queued); an error is
// the device gone, counted here so the worker carries on with its other
// sockets.
func (w *Worker) kick(p Port) {
	if err := p.Kick(); err != nil {
		w.C.PortErrors.Add(1)
	}
}

// countTX counts frames handed to a TX ring. The worker is the only
// writer of C.TX and C.TXBytes, so it keeps the totals and publishes them
// with plain stores that inline (plainstore.Unordered64: counts read whole,
// ordered against nothing; see dataplane/shadow.go).
func (w *Worker) countTX(ds []xsk.Desc) {
	if len(ds) == 0 {
		return
	}
	var b uint64
	for _, d := range ds {
		b += uint64(d.Len)
	}
	w.txFrames += uint64(len(ds))
	w.txBytes += b
	plainstore.Unordered64(&w.C.TX, w.txFrames)
	plainstore.Unordered64(&w.C.TXBytes, w.txBytes)
}

// waitBound is the longest a worker sleeps in Wait, so that it sees Stop.
const waitBound = 20 * time.Millisecond

// Run pins the worker and polls until Stop, waiting as its poll mode says
// (SetPoll). Call it on its own goroutine; it locks that goroutine to its
// OS thread for its lifetime and names the thread afvs-worker.
func (w *Worker) Run() {
	lockThread()
	w.tid.Store(int32(nameThread(WorkerThreadName)))
	if w.CPU >= 0 && w.pinHook != nil {
		w.pinErr = w.pinHook(w.CPU)
	}
	l := Loop{Stop: &w.stop, Config: &w.pollCfg, Poll: w.Poll, Wait: w.wait, Sleeps: &w.sleeps}
	l.Run()
	w.rx.Complete()
}

// SetPoll changes the worker's poll mode from any goroutine. The loop
// follows it at its next empty turn; the socket's busy-poll options
// (xsk.Socket.SetBusyPoll: on in the busy and adaptive modes, off in
// sleep) follow at the next Poll, on the worker's own goroutine.
func (w *Worker) SetPoll(c PollConfig) { w.pollCfg.Store(&c) }

// PollConfig is the poll mode in force.
func (w *Worker) PollConfig() PollConfig { return *w.pollCfg.Load() }

// busyPollUsecs and busyPollBudget are the busy-poll socket options a
// worker asks for: a NAPI poll of one batch per system call.
const (
	busyPollUsecs  = 20
	busyPollBudget = dataplane.Batch
)

// SocketBusyPoll is the busy-poll socket options (xsk.Socket.SetBusyPoll)
// a receiving socket polled in mode c gets: on, with busyPollUsecs and
// busyPollBudget, in the busy and adaptive modes; off in sleep. The
// bench's baseline forwarder asks for the same, so that both forwarders
// meet the kernel the same way.
func SocketBusyPoll(c PollConfig) (on bool, usecs, budget int) {
	return c.Mode != PollSleep, busyPollUsecs, busyPollBudget
}

// applyPoll sets the receiving socket's busy-poll options for c, when the
// port is a real socket and c changes whether they are wanted.
func (w *Worker) applyPoll(c *PollConfig) {
	want, usecs, budget := SocketBusyPoll(*c)
	w.applied = c
	bp, ok := bare(w.rx).(interface {
		SetBusyPoll(on bool, usecs, budget int) xsk.BusyPoll
		BusyPoll() xsk.BusyPoll
	})
	if !ok {
		return
	}
	if cur := w.busy.Load(); cur != nil && (*cur).On() == want {
		return
	}
	b := bp.SetBusyPoll(want, usecs, budget)
	w.busy.Store(&b)
}

// BusyPoll reports the busy-poll socket options in force on the receiving
// socket; ok is false on a port that has none (an in-memory one).
func (w *Worker) BusyPoll() (b xsk.BusyPoll, ok bool) {
	if p := w.busy.Load(); p != nil {
		return *p, true
	}
	return xsk.BusyPoll{}, false
}

// Sleeps counts the worker's waits in poll(2).
func (w *Worker) Sleeps() uint64 { return w.sleeps.Load() }

// ThreadID is the worker's OS thread id once Run has started, else 0.
func (w *Worker) ThreadID() int { return int(w.tid.Load()) }

// wait is the receiving socket's Wait, with a failure counted.
func (w *Worker) wait(d time.Duration) error {
	if w.sending {
		// Frames wait on a TX ring the kernel found busy: come back
		// soon to kick them again rather than at the next frame.
		d = min(d, time.Millisecond)
	}
	err := w.rx.Wait(d)
	if err != nil {
		w.C.PortErrors.Add(1)
	}
	return err
}

// PinError reports why pinning failed, if it did.
func (w *Worker) PinError() error { return w.pinErr }

// SocketCounters are the AF_XDP socket's own event counts for a worker's
// receiving socket: ring events the dataplane counters do not see.
type SocketCounters struct {
	FillEmpty       uint64 // the fill ring could not be refilled: no free frame
	TxFull          uint64 // the TX ring had no room
	KickErrors      uint64 // a wake-up of the kernel's TX path failed
	RxDropped       uint64 // kernel: frames dropped for other reasons
	RxRingFull      uint64 // kernel: the RX ring was full
	RxFillRingEmpty uint64 // kernel: a frame arrived with the fill ring empty
	// RxBatches counts the socket's receives that returned frames: the
	// queue's received frames over it is the worker's mean batch, small
	// when the worker keeps up with its traffic and 64 when it does not.
	RxBatches uint64
}

// Sockets reports the receiving socket's counters, when the port is a real
// AF_XDP socket.
func (w *Worker) Sockets() (SocketCounters, bool) {
	s, ok := bare(w.rx).(*xsk.Socket)
	if !ok {
		return SocketCounters{}, false
	}
	c := s.Counters()
	out := SocketCounters{FillEmpty: c.FillEmpty, TxFull: c.TxFull, KickErrors: c.KickErrors, RxBatches: c.RxBatches}
	if k, err := s.KernelStats(); err == nil {
		out.RxDropped, out.RxRingFull, out.RxFillRingEmpty = k.RxDropped, k.RxRingFull, k.RxFillRingEmpty
	}
	return out, true
}
