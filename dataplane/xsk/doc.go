// Package xsk is the dataplane's AF_XDP ring layer: one Socket per NIC
// queue, each with its own UMEM, moving frames between the kernel and one
// worker goroutine without copies, locks or allocation.
//
// # Mechanism
//
// An AF_XDP socket shares five regions with the kernel. The UMEM is a
// block of memory cut into equal chunks, one frame per chunk. Four
// single-producer single-consumer rings pass chunks back and forth: we
// produce empty chunks to the fill ring, the kernel writes received frames
// into them and produces descriptors to the RX ring; we produce frames to
// send to the TX ring, and the kernel returns each sent chunk on the
// completion ring. Each ring is an array indexed by two free-running 32-bit
// counters, producer and consumer, each written by one side only.
//
// Following gVisor's pkg/xdp, every ring keeps cached copies of both
// counters. The other side's counter is read with an atomic load only when
// the cached copy shows too little room or data for the batch at hand, and
// our own counter is published with one atomic store at the end of each
// batch, which orders the descriptor writes before it. A batch of 64
// frames therefore costs two or three atomic operations, not 128.
//
// The socket is bound with XDP_USE_NEED_WAKEUP: the kernel sets a flag on
// a ring when it needs a system call to make progress, and Kick makes the
// sendto only then, and only when the TX ring holds frames. In copy mode
// the kernel sends at most 32 frames per sendto unless XDP_MAX_TX_SKB_BUDGET
// (Options.TxBudget) raises it; a kernel without that option keeps 32.
//
// # Frame ownership
//
// Every chunk is in exactly one place: the free list, the kernel's receive
// side (fill ring, being written, RX ring), the caller, or the kernel's
// transmit side (TX ring, being sent, completion ring). The Socket records
// the place of each chunk and checks every transition, so a frame can
// never be handed to the kernel twice or reused while in flight: a second
// Release or a Transmit of a frame the caller no longer owns is refused and
// counted. Account counts the frames both by place and by ring indices, and
// tests check that the two agree and sum to the UMEM size after traffic.
//
// Received frames start XDP_PACKET_HEADROOM (256) bytes into their chunk,
// so encapsulation can prepend an outer header in place by moving
// Desc.Addr back and growing Desc.Len.
//
// # Concurrency
//
// A Socket belongs to one goroutine, normally a worker locked to the CPU of
// its queue. Counters are written once per call with atomic stores so
// that a metrics goroutine may read them at any time.
//
// The benchmarks compare Socket with a Baseline that wraps
// github.com/asavie/xdp on the same workload. Baseline lives in a test
// file, so only this package's tests import that library; the production
// package and every binary built from it do not.
package xsk
