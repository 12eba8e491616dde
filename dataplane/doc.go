// Package dataplane is the director's per-frame path: the Processor that
// decides each frame's fate, the Snapshot it reads, the Registry of
// service and real-server IDs, the counters and drop reasons, and the ICMP
// limiter. It touches no kernel interface, so the simulator (package sim)
// and the pcap replay run exactly this code without the AF_XDP, XDP and
// netlink packages. The Director, its Workers and the Platform they run on
// live in package dataplane/director, which imports this one.
//
// A Processor runs every frame of a batch through:
//
//	parse (internal/header) -> service lookup -> connection table (conntrack)
//	-> on a miss, persistence template and scheduler (sched) -> encapsulation
//	(encap) -> a verdict and the frame's place in its buffer.
//
// A batch is processed in three passes so that connection-table cache misses
// overlap instead of adding up: parse every frame and build its key, look
// all keys up at once (conntrack.LookupBatch touches every bucket header,
// then every candidate entry, before it compares anything), then run each
// frame through the rest of the path. The gain grows with the table, as
// more lookups miss the caches; BenchmarkWorkerPoll in dataplane/director
// measures it with the batched lookup on and off.
//
// Two kinds of frame take a side path after parsing. An ICMP error quoting
// a virtual service's reply goes to the real server of the connection it
// is about, found from the quoted tuple reversed (icmperr.go). An IPv4
// fragment is forwarded without reassembly: the first, which carries the
// ports, is scheduled as any packet and its decision kept in a small fixed
// table keyed by source, destination, protocol and IP ID; later fragments
// follow it, and one that comes before its first is held in a fixed set of
// slots until the first releases it or its time runs out (frag.go).
//
// One-packet scheduling (ipvsadm -o) changes only the end of a miss: a
// UDP datagram of such a service that no connection matches goes through
// the persistence template and the scheduler as any new connection, is
// forwarded and counted as one connection, but nothing is inserted, so
// the next datagram is scheduled afresh (Processor.schedule). Connections
// that exist still match first, as in IPVS.
//
// VS/NAT (nat.go, nat_icmp.go) adds the reverse direction. A client
// packet of a NAT connection is rewritten to the real server's address
// and port; a frame to no service whose source is a NAT real server
// (address, protocol, port, filed in the snapshot and in the steering
// program's map) is a reply. A reply finds its connection through the
// connection table's reverse index: a second bounded, lock-free store
// keyed by the reply's tuple whose entries point at the connection's
// slot and generation, so a reply is one hashed lookup plus one read of
// the connection's entry, never a second full lookup, and an entry whose
// connection has gone answers nothing (conntrack's package doc has the
// details). The index entry also records the interface and MAC the
// client's first packet came from, where replies go back without a route
// lookup. Checksums are updated incrementally, never summed over the
// payload; ICMP errors about NAT connections are translated both ways as
// ip_vs_nat_icmp does.
//
// Frames the processor cannot forward are dropped and counted by Drop reason;
// nothing on this path returns an error value or allocates.
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
package dataplane
