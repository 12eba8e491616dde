package xsk

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Desc is a frame in the UMEM. Addr is where the frame's data starts; the
// chunk holding it starts at Addr &^ (FrameSize-1). Received frames start
// Headroom bytes into their chunk, so a caller may prepend k <= Addr-chunk
// bytes with Addr -= k, Len += k.
type Desc struct {
	Addr uint64
	Len  uint32
}

// Socket is one AF_XDP socket with its own UMEM, bound to one queue of one
// interface.
//
// A Socket is owned by one goroutine: Fill, Receive, Release, Alloc,
// Transmit, Kick, Complete, Wait, Frame, Chunk, Account and Close must all
// be called from it, and nothing here locks. Only Counters, KernelStats and
// FD may be called from other goroutines while the owner runs.
type Socket struct {
	fd       int
	umem     []byte
	opt      Options
	frames   frames
	fill     addrRing
	comp     addrRing
	rx       descRing
	tx       descRing
	c        counters
	pfd      [1]unix.PollFd
	headroom uint64
	zeroCopy bool
	txBudget int
	busyPoll BusyPoll
}

// Open creates an AF_XDP socket with a fresh UMEM and binds it to queue of
// the interface ifindex in the calling thread's network namespace. The
// socket only receives once an XDP program redirects to it through an
// XSKMAP entry holding FD().
func Open(ifindex, queue int, opt Options) (*Socket, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("open xsk: %w", err)
	}
	if ifindex <= 0 {
		return nil, fmt.Errorf("open xsk: ifindex %d: must be positive", ifindex)
	}
	if queue < 0 {
		return nil, fmt.Errorf("open xsk: queue %d: must not be negative", queue)
	}
	s := &Socket{fd: -1, opt: opt}
	if err := s.open(ifindex, queue); err != nil {
		s.Close()
		return nil, fmt.Errorf("open xsk on ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return s, nil
}

func (s *Socket) open(ifindex, queue int) error {
	opt := s.opt
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket(AF_XDP): %w", err)
	}
	s.fd = fd

	// Anonymous private memory is enough: the kernel pins the pages at
	// registration, and the mapping is never shared with another process.
	s.umem, err = unix.Mmap(-1, 0, opt.NumFrames*opt.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap umem of %d frames of %d bytes: %w", opt.NumFrames, opt.FrameSize, err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))),
		Len:  uint64(len(s.umem)),
		Size: uint32(opt.FrameSize),
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("register umem (is RLIMIT_MEMLOCK too low?): %w", err)
	}
	sizes := []struct {
		name string
		opt  int
		n    int
	}{
		{"fill", unix.XDP_UMEM_FILL_RING, opt.FillSize},
		{"completion", unix.XDP_UMEM_COMPLETION_RING, opt.CompletionSize},
		{"rx", unix.XDP_RX_RING, opt.RxSize},
		{"tx", unix.XDP_TX_RING, opt.TxSize},
	}
	for _, r := range sizes {
		if r.n == 0 {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, r.n); err != nil {
			return fmt.Errorf("size %s ring to %d: %w", r.name, r.n, err)
		}
	}

	var off unix.XDPMmapOffsets
	offLen := uint32(unsafe.Sizeof(off))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&offLen)), 0); errno != 0 {
		return fmt.Errorf("get ring offsets: %w", errno)
	}
	if s.fill, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, opt.FillSize); err != nil {
		return fmt.Errorf("map fill ring: %w", err)
	}
	if s.comp, err = mapAddrRing(fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, opt.CompletionSize); err != nil {
		return fmt.Errorf("map completion ring: %w", err)
	}
	if opt.RxSize > 0 {
		if s.rx, err = mapDescRing(fd, unix.XDP_PGOFF_RX_RING, off.Rx, opt.RxSize); err != nil {
			return fmt.Errorf("map rx ring: %w", err)
		}
	}
	if opt.TxSize > 0 {
		if s.tx, err = mapDescRing(fd, unix.XDP_PGOFF_TX_RING, off.Tx, opt.TxSize); err != nil {
			return fmt.Errorf("map tx ring: %w", err)
		}
	}

	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	mode := "auto"
	switch {
	case opt.Copy:
		flags |= unix.XDP_COPY
		mode = "copy"
	case opt.ZeroCopy:
		flags |= unix.XDP_ZEROCOPY
		mode = "zero-copy"
	}
	// The kernel frees a closed socket's hold on its queue from a work
	// queue, so a queue closed a moment ago can still be busy: retry for a
	// bounded time rather than fail a restart.
	sa := &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	for deadline := time.Now().Add(bindRetry); ; {
		err := unix.Bind(fd, sa)
		if err == nil {
			break
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			return fmt.Errorf("bind in %s mode: %w", mode, err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	var xoFlags uint32 // struct xdp_options, which x/sys/unix lacks
	xoLen := uint32(unsafe.Sizeof(xoFlags))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&xoFlags)), uintptr(unsafe.Pointer(&xoLen)), 0); errno == 0 {
		s.zeroCopy = xoFlags&unix.XDP_OPTIONS_ZEROCOPY != 0
	}

	// A kernel that lacks XDP_MAX_TX_SKB_BUDGET (before 6.17) or rejects
	// the value keeps its default of 32 frames per kick; that is slower,
	// not wrong, so it is not an error.
	if opt.TxBudget > 0 && opt.TxSize > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, opt.TxBudget) == nil {
			s.txBudget = opt.TxBudget
		}
	}

	s.frames = newFrames(opt.NumFrames, opt.FrameSize)
	s.headroom = unix.XDP_PACKET_HEADROOM
	s.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	return nil
}

// bindRetry bounds how long Open waits for a just-closed socket's queue.
const bindRetry = time.Second

// setsockopt passes a struct option, which x/sys/unix has no wrapper for.
func setsockopt(fd, name int, p unsafe.Pointer, n uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(name), uintptr(p), n, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// FD is the socket's file descriptor, to be stored in an XSKMAP.
func (s *Socket) FD() int { return s.fd }

// UMEM is the whole frame memory shared with the kernel.
func (s *Socket) UMEM() []byte { return s.umem }

// FrameSize is the size of one UMEM chunk.
func (s *Socket) FrameSize() int { return s.opt.FrameSize }

// NumFrames is the number of UMEM chunks.
func (s *Socket) NumFrames() int { return s.opt.NumFrames }

// Headroom is how far into its chunk the kernel puts a received frame
// (XDP_PACKET_HEADROOM, since the UMEM is registered with no headroom of
// its own); the tests measure it on real traffic.
func (s *Socket) Headroom() int { return int(s.headroom) }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// TxBudget is the per-kick send budget the kernel accepted, or 0 when it
// kept its default.
func (s *Socket) TxBudget() int { return s.txBudget }

// Frame is the data of d, or nil when d does not lie inside the UMEM. It
// aliases the UMEM: it stays valid only while the caller owns the frame.
func (s *Socket) Frame(d Desc) []byte {
	end := d.Addr + uint64(d.Len)
	if end > uint64(len(s.umem)) || end < d.Addr {
		return nil
	}
	return s.umem[d.Addr:end:end]
}

// Chunk is the whole chunk holding addr, or nil when addr is outside the
// UMEM.
func (s *Socket) Chunk(addr uint64) []byte {
	if addr >= uint64(len(s.umem)) {
		return nil
	}
	base := addr &^ s.frames.mask
	end := base + uint64(s.opt.FrameSize)
	return s.umem[base:end:end]
}

// Fill moves free frames into the fill ring so the kernel can receive into
// them, and returns how many it moved. Finding room in the ring but no free
// frame is counted as FillEmpty. A TX-only socket fills nothing.
func (s *Socket) Fill() int {
	if s.rx.ents == nil {
		return 0
	}
	room := s.fill.free(uint32(len(s.frames.free)))
	if room == 0 {
		return 0
	}
	n := min(int(room), len(s.frames.free))
	if n == 0 {
		add(&s.c.fillEmpty, 1)
		return 0
	}
	// Locals keep the loop in registers: the compiler would otherwise
	// reload every field through s on each iteration.
	ents, mask, prod := s.fill.ents, s.fill.mask, s.fill.cachedProd
	free, place, shift := s.frames.free, s.frames.place, s.frames.shift
	top := len(free)
	for i := 0; i < n; i++ {
		top--
		addr := free[top]
		place[addr>>shift] = placeFill
		ents[prod&mask] = addr
		prod++
	}
	s.frames.free = free[:top]
	s.fill.cachedProd = prod
	s.fill.publishProducer()
	add(&s.c.filled, uint64(n))
	return n
}

// Receive takes up to len(out) received frames. The caller owns each one
// until it passes it to Transmit or Release.
//
// When nothing has arrived and the kernel asked for a wakeup on the fill
// ring (zero-copy drivers in need_wakeup mode), or busy polling is on
// (SetBusyPoll), Receive makes one non-blocking recvfrom so that the
// driver starts using the filled frames or the kernel polls the device.
//
// That recvfrom, like Kick's sendto, is made as a raw system call, outside
// the Go scheduler's syscall bookkeeping: both are non-blocking
// (MSG_DONTWAIT) and bounded (a busy poll spins at most its configured
// microseconds), so the goroutine keeps its P throughout. Through the
// scheduler, a call that spins past a sysmon tick can have its P handed to
// another thread, which wakes to find nothing to do, and the worker then
// waits to get a P back when the call returns.
func (s *Socket) Receive(out []Desc) int {
	if s.rx.ents == nil || len(out) == 0 {
		return 0
	}
	n := min(int(s.rx.avail(uint32(len(out)))), len(out))
	if n == 0 {
		if s.fill.needWakeup() || s.busyPoll.On() {
			_, _, _ = unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
			add(&s.c.rxWakeups, 1)
		}
		return 0
	}
	ents, mask, cons := s.rx.ents, s.rx.mask, s.rx.cachedCons
	place, shift, size := s.frames.place, s.frames.shift, s.frames.size
	out = out[:n]
	got := 0
	for i := 0; i < n; i++ {
		d := &ents[cons&mask]
		cons++
		// The kernel only returns frames we filled; a frame in any other
		// place would mean memory corruption, and handing it out would
		// let two owners write it.
		c := d.Addr >> shift
		if d.Addr >= size || place[c] != placeFill {
			continue
		}
		place[c] = placeCaller
		out[got] = Desc{Addr: d.Addr, Len: d.Len}
		got++
	}
	s.rx.cachedCons = cons
	s.rx.publishConsumer()
	if got > 0 {
		add(&s.c.rx, uint64(got))
		add(&s.c.rxBatches, 1)
	}
	return got
}

// Release gives the frame holding addr back to the free list. Releasing a
// frame the caller does not own is ignored and counted as BadRelease.
func (s *Socket) Release(addr uint64) {
	if !s.frames.push(addr, placeCaller) {
		add(&s.c.badRelease, 1)
	}
}

// Alloc takes a free frame for the caller to build a frame in. addr is the
// chunk base; the caller sends it with Transmit(Desc{addr + k, n}) for any
// k+n within FrameSize. ok is false, and AllocEmpty counted, when no frame
// is free.
func (s *Socket) Alloc() (addr uint64, ok bool) {
	addr, ok = s.frames.pop(placeCaller)
	if !ok {
		add(&s.c.allocEmpty, 1)
	}
	return addr, ok
}

// Transmit queues descs to the TX ring in order and returns how many it
// queued; descs[n:] still belong to the caller. It stops early at a full
// ring (counted as TxFull) or at a descriptor it refuses (counted as
// TxInvalid): a frame the caller does not own, an empty one, or one that
// runs past the end of its chunk. Frames are not sent until Kick.
func (s *Socket) Transmit(descs []Desc) int {
	if s.tx.ents == nil || len(descs) == 0 {
		return 0
	}
	room := int(s.tx.free(uint32(len(descs))))
	n := min(room, len(descs))
	ents, mask, prod := s.tx.ents, s.tx.mask, s.tx.cachedProd
	place, shift, size, fmask := s.frames.place, s.frames.shift, s.frames.size, s.frames.mask
	queued := 0
	for ; queued < n; queued++ {
		d := descs[queued]
		c := d.Addr >> shift
		if d.Len == 0 || d.Addr >= size || (d.Addr&fmask)+uint64(d.Len) > fmask+1 || place[c] != placeCaller {
			add(&s.c.txInvalid, 1)
			break
		}
		place[c] = placeTx
		ents[prod&mask] = unix.XDPDesc{Addr: d.Addr, Len: d.Len}
		prod++
	}
	if queued == n && n < len(descs) {
		add(&s.c.txFull, 1)
	}
	if queued > 0 {
		s.tx.cachedProd = prod
		s.tx.publishProducer()
		add(&s.c.tx, uint64(queued))
	}
	return queued
}

// Kick asks the kernel to send what the TX ring holds. It makes a sendto
// only when frames are waiting and the kernel set need_wakeup on the TX
// ring (copy mode always does; zero-copy drivers only when idle). In copy
// mode one sendto sends at most TxBudget frames (32 by default) and then
// fails with EAGAIN, so Kick repeats the sendto while the kernel keeps
// taking frames, up to maxKicks times. When the kernel takes nothing
// (EAGAIN, ENOBUFS or EBUSY with no progress: the device queue or the
// completion ring is full) the frames stay queued for the next Kick, and
// KickErrors counts it. Other errors (the device went away) are returned.
func (s *Socket) Kick() error {
	if s.tx.ents == nil {
		return nil
	}
	cons := atomic.LoadUint32(s.tx.consumer)
	for try := 0; try < maxKicks; try++ {
		if s.tx.cachedProd == cons || !s.tx.needWakeup() {
			return nil
		}
		add(&s.c.kicks, 1)
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0, unix.EINTR:
		case unix.EAGAIN, unix.ENOBUFS, unix.EBUSY:
			now := atomic.LoadUint32(s.tx.consumer)
			if now == cons {
				add(&s.c.kickErrors, 1)
				return nil
			}
		default:
			return fmt.Errorf("kick tx on xsk fd %d: %w", s.fd, errno)
		}
		cons = atomic.LoadUint32(s.tx.consumer)
	}
	return nil
}

// TxPending reports whether frames wait on the TX ring that the kernel has
// not taken yet: a Kick that found the device busy leaves them there, and
// nothing sends them until the next Kick.
func (s *Socket) TxPending() bool {
	return s.tx.ents != nil && s.tx.cachedProd != atomic.LoadUint32(s.tx.consumer)
}

// maxKicks bounds the sendto calls of one Kick, so that a worker returns
// to its receive side even when the TX ring is long and the budget small.
const maxKicks = 8

// Complete reaps the completion ring: every frame the kernel finished
// sending goes back to the free list. It returns how many.
func (s *Socket) Complete() int {
	n := s.comp.avail(s.comp.size)
	if n == 0 {
		return 0
	}
	ents, mask, cons := s.comp.ents, s.comp.mask, s.comp.cachedCons
	for i := uint32(0); i < n; i++ {
		s.frames.push(ents[cons&mask], placeTx)
		cons++
	}
	s.comp.cachedCons = cons
	s.comp.publishConsumer()
	add(&s.c.completed, uint64(n))
	return int(n)
}

// Wait blocks until a frame is ready on the RX ring or timeout passes,
// whichever comes first, so a worker can check for shutdown between
// waits. Negative timeouts count as zero; timeouts are rounded up to a
// millisecond. A timeout or a signal is not an error.
func (s *Socket) Wait(timeout time.Duration) error {
	if s.rx.ents == nil {
		return fmt.Errorf("wait on xsk fd %d: socket has no rx ring (rx size 0)", s.fd)
	}
	ms := int((max(timeout, 0) + time.Millisecond - 1) / time.Millisecond)
	_, err := unix.Poll(s.pfd[:], ms)
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("poll xsk fd %d: %w", s.fd, err)
	}
	return nil
}

// Counters returns the owner's counters. Safe from any goroutine.
func (s *Socket) Counters() Counters { return s.c.snapshot() }

// KernelStats are the kernel's own counters for the socket
// (XDP_STATISTICS).
type KernelStats struct {
	// RxDropped is frames dropped for reasons other than the two below.
	RxDropped uint64
	// RxInvalidDescs is fill or RX descriptors the kernel rejected.
	RxInvalidDescs uint64
	// TxInvalidDescs is TX descriptors the kernel rejected.
	TxInvalidDescs uint64
	// RxRingFull is frames dropped because the RX ring was full.
	RxRingFull uint64
	// RxFillRingEmpty is times the kernel found the fill ring empty.
	RxFillRingEmpty uint64
	// TxRingEmpty is times the kernel found the TX ring empty.
	TxRingEmpty uint64
}

// KernelStats reads the kernel's counters; it works on any socket,
// including TX-only ones. Safe from any goroutine while the socket is open.
func (s *Socket) KernelStats() (KernelStats, error) {
	if s.fd < 0 {
		return KernelStats{}, errors.New("kernel stats: socket is closed")
	}
	var st unix.XDPStatistics
	n := uint32(unsafe.Sizeof(st))
	if _, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0); errno != 0 {
		return KernelStats{}, fmt.Errorf("kernel stats of xsk fd %d: %w", s.fd, errno)
	}
	return KernelStats{
		RxDropped:       st.Rx_dropped,
		RxInvalidDescs:  st.Rx_invalid_descs,
		TxInvalidDescs:  st.Tx_invalid_descs,
		RxRingFull:      st.Rx_ring_full,
		RxFillRingEmpty: st.Rx_fill_ring_empty_descs,
		TxRingEmpty:     st.Tx_ring_empty_descs,
	}, nil
}

// Close unmaps the rings and the UMEM and closes the socket, which also
// removes it from any XSKMAP. It is safe to call twice.
func (s *Socket) Close() error {
	var errs []error
	for _, r := range []interface{ unmap() error }{&s.fill, &s.comp, &s.rx, &s.tx} {
		if err := r.unmap(); err != nil {
			errs = append(errs, fmt.Errorf("unmap ring: %w", err))
		}
	}
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close xsk fd %d: %w", s.fd, err))
		}
		s.fd = -1
	}
	if s.umem != nil {
		if err := unix.Munmap(s.umem); err != nil {
			errs = append(errs, fmt.Errorf("unmap umem: %w", err))
		}
		s.umem = nil
	}
	return errors.Join(errs...)
}
