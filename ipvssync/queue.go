package ipvssync

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Record is what a dataplane worker hands to the sync sender for one
// connection it decided to sync (see Needed): a fixed-size value with no
// pointers, so a queue of them is one flat array the garbage collector
// never scans, and copying one is a memory move.
type Record struct {
	CAddr, VAddr, DAddr [16]byte // IPv4 in the first 4 bytes unless IPv6
	Flags               uint32   // IP_VS_CONN_F_*
	FWMark              uint32
	Timeout             uint32 // seconds
	CPort, VPort, DPort uint16
	State               uint16
	Protocol            uint8
	IPv6                bool
}

// Set fills r from a connection entry. PE data and the sequence option
// are not carried: afvs has no persistence engines, and the sync master
// adds a SYN-proxied connection's sequence shift to the entry it makes
// from the record (syncd's Host.SyncSeq).
func (r *Record) Set(c *Conn) {
	*r = Record{
		Flags: c.Flags, FWMark: c.FWMark, Timeout: c.Timeout,
		CPort: c.CPort, VPort: c.VPort, DPort: c.DPort,
		State: c.State, Protocol: c.Protocol, IPv6: c.IPv6(),
	}
	put := func(dst *[16]byte, a netip.Addr) {
		if r.IPv6 {
			*dst = a.As16()
		} else {
			a4 := a.As4()
			copy(dst[:], a4[:])
		}
	}
	put(&r.CAddr, c.CAddr)
	put(&r.VAddr, c.VAddr)
	put(&r.DAddr, c.DAddr)
}

// Conn fills c, ready for Encoder.Append. The sequence-adjustment flags
// are cleared: the kernel sends them only with the sequence option, which
// a Record does not carry.
func (r *Record) Conn(c *Conn) {
	*c = Conn{
		Protocol: r.Protocol, Flags: r.Flags &^ FlagSeqMask, State: r.State,
		CPort: r.CPort, VPort: r.VPort, DPort: r.DPort,
		FWMark: r.FWMark, Timeout: r.Timeout,
	}
	if r.IPv6 {
		c.CAddr, c.VAddr, c.DAddr = netip.AddrFrom16(r.CAddr), netip.AddrFrom16(r.VAddr), netip.AddrFrom16(r.DAddr)
	} else {
		c.CAddr = netip.AddrFrom4([4]byte(r.CAddr[:4]))
		c.VAddr = netip.AddrFrom4([4]byte(r.VAddr[:4]))
		c.DAddr = netip.AddrFrom4([4]byte(r.DAddr[:4]))
	}
}

// cacheLine keeps the producer's and the consumer's fields on separate
// cache lines, so neither side's writes invalidate the other's reads.
const cacheLine = 64

// Queue is a bounded single-producer, single-consumer ring of Records:
// one worker pushes, one sender pops, with no lock and no allocation. A
// push into a full queue drops the record and counts it.
//
// Positions only grow; a slot is pos & mask. The producer stages records
// and counts drops in fields only it touches, and publishes both with
// Publish, once per batch of frames as the workers publish their other
// counters, so a push is a copy and two plain adds. The consumer frees
// the slots it read by storing the head after reading them. Each side
// caches the other's position and reloads it only when the ring looks
// full (or empty).
type Queue struct {
	_         [cacheLine]byte
	next      uint64        // producer: next slot to write
	headCache uint64        // producer: last view of head
	drops     uint64        // producer: drops not yet published
	skips     uint64        // producer: skips not yet published
	tail      atomic.Uint64 // published next; stored by Publish
	dropped   atomic.Uint64 // published drops; stored by Publish
	skipped   atomic.Uint64 // published skips; stored by Publish
	wokeAt    uint64        // producer: next when it last woke the consumer
	waker     atomic.Pointer[waker]
	_         [2*cacheLine - 72]byte
	head      atomic.Uint64 // consumer: next slot to read
	tailCache uint64        // consumer: last view of tail
	_         [cacheLine - 16]byte
	mask      uint64
	buf       []Record
}

// NewQueue returns a queue of capacity slots, a power of two.
func NewQueue(capacity int) (*Queue, error) {
	if capacity < 1 || capacity > 1<<30 || capacity&(capacity-1) != 0 {
		return nil, fmt.Errorf("ipvssync: queue capacity %d: must be a power of two in 1..%d", capacity, 1<<30)
	}
	return &Queue{mask: uint64(capacity - 1), buf: make([]Record, capacity)}, nil
}

// Cap is the queue's capacity.
func (q *Queue) Cap() int { return len(q.buf) }

// Push copies r into the queue, visible to the consumer after the next
// Publish. It returns false, and counts a drop, if the queue is full.
// Only one goroutine may push and publish.
func (q *Queue) Push(r *Record) bool {
	t := q.next
	if t-q.headCache > q.mask {
		q.headCache = q.head.Load()
		if t-q.headCache > q.mask {
			q.drops++
			return false
		}
	}
	q.buf[t&q.mask] = *r
	q.next = t + 1
	return true
}

// waker is how a producer wakes its consumer: a signal on c, sent
// without blocking, once every records have been published since the
// last.
type waker struct {
	c     chan<- struct{}
	every uint64
}

// SetWake makes Publish signal c, without blocking, once at least every
// records have been published since its last signal, as the kernel's
// sb_queue_tail wakes its sync master once IPVS_SYNC_WAKEUP_RATE buffers
// are queued instead of leaving them to its timer. A nil c or an every of
// 0 stops the signals. Any goroutine may call it; the producer sees the
// change at its next Publish.
func (q *Queue) SetWake(c chan<- struct{}, every int) {
	if c == nil || every <= 0 {
		q.waker.Store(nil)
		return
	}
	q.waker.Store(&waker{c: c, every: uint64(every)})
}

// Skip counts a connection the producer decided not to offer because no
// record can carry it (one whose real server's address family is not its
// client's), visible to Skipped after the next Publish.
// Only the producer may call it.
func (q *Queue) Skip() { q.skips++ }

// Publish makes the records pushed so far visible to the consumer, the
// drops so far to Dropped and the skips to Skipped.
func (q *Queue) Publish() {
	if q.tail.Load() != q.next {
		q.tail.Store(q.next)
		if w := q.waker.Load(); w != nil && q.next-q.wokeAt >= w.every {
			q.wokeAt = q.next
			select {
			case w.c <- struct{}{}:
			default: // a signal is already pending
			}
		}
	}
	if q.dropped.Load() != q.drops {
		q.dropped.Store(q.drops)
	}
	if q.skipped.Load() != q.skips {
		q.skipped.Store(q.skips)
	}
}

// Skipped is the number of connections the producer counted with Skip,
// as of the last Publish. Any goroutine may read it.
func (q *Queue) Skipped() uint64 { return q.skipped.Load() }

// Pop copies the oldest published record into r. It returns false if
// there is none. Only one goroutine may pop.
func (q *Queue) Pop(r *Record) bool {
	h := q.head.Load()
	if h == q.tailCache {
		q.tailCache = q.tail.Load()
		if h == q.tailCache {
			return false
		}
	}
	*r = q.buf[h&q.mask]
	q.head.Store(h + 1)
	return true
}

// Len is the number of published records waiting; exact only when
// neither side is busy.
func (q *Queue) Len() int { return int(q.tail.Load() - q.head.Load()) }

// Dropped is the number of records refused because the queue was full,
// as of the last Publish. Any goroutine may read it.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }
