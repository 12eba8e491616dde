// Package dataplane is the director's per-frame path and the workers that run
// it.
//
// One Worker serves one NIC RX queue. It is locked to its OS thread and pinned
// to the CPU that serves the queue's IRQ. Each turn of its loop it reaps the
// TX completion ring, refills the fill ring, takes a batch of received frames,
// loads the current Snapshot once, and runs every frame through Processor:
//
//	parse (internal/header) -> service lookup -> connection table (conntrack)
//	-> on a miss, persistence template and scheduler (sched) -> encapsulation
//	(encap) -> TX on the egress interface's socket.
//
// A batch is processed in three passes so that connection-table cache misses
// overlap instead of adding up: parse every frame and build its key, look
// all keys up at once (conntrack.LookupBatch touches every bucket header,
// then every candidate entry, before it compares anything), then run each
// frame through the rest of the path. The gain grows with the table, as
// more lookups miss the caches; BenchmarkWorkerPoll measures it with the
// batched lookup on and off.
//
// Frames the processor cannot forward are dropped and counted by Drop reason;
// nothing on this path returns an error value or allocates. A frame is always
// in exactly one place: the ring it came from, the worker's batch, a TX ring, or
// the socket's free list (see package xsk).
//
// The control plane never edits what workers read. It compiles a vs.Table plus
// the resolved neighbours into a new immutable Snapshot and publishes it with
// an atomic pointer store; workers pick it up at their next batch. Schedulers
// are rebuilt only when a service's real servers or weights change, so a
// neighbour update does not reset a round-robin position.
//
// A change applies whole or not at all: Compile works everything out
// without changing what is in force (IDs, thresholds, schedulers), the
// steering set is widened, and only then does Plan.Commit put the IDs and
// thresholds in force and the snapshot get published. A real server that
// leaves keeps its ID in the Registry's trash, as IPVS's dest_trash keeps
// the dest, so its connections find it again if it comes back.
//
// Counters are per worker (one writer each) and summed when read, so no
// cache line is shared between queues on the hot path.
//
// The Director reaches the kernel only through a Platform: interfaces,
// routes, neighbours, CPU plans and pinning, AF_XDP sockets, and the XDP
// programs. Kernel() is the real one; dataplane/platformtest simulates
// hosts on Ethernet segments, so Directors run in unit tests without root.
// Egress interfaces (those real servers route through but that receive no
// VIP traffic) are opened when a table first needs one, with TX-only
// sockets shared by the workers, and closed when no real server routes
// through them: the workers get a new TX table (Worker.SetTX) and finish
// the batch that may still use the old one (Worker.Quiet) before the
// sockets close.
package dataplane
