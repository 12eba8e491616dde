// Package conntrack is the director's connection table: for every frame it
// answers which real server a flow belongs to, and it keeps the per-server
// ActiveConn/InActConn counts the least-connection schedulers read. It
// follows IPVS's behaviour (the TCP state machine, input-only for VS/DR
// and VS/TUN and both directions for VS/NAT, its per-state timeouts,
// persistence templates, drop_entry-style eviction) in a layout that is
// lock-free for readers, bounded and invisible to the GC.
//
// # VS/NAT: both directions
//
// A VS/NAT connection's client packets move its state by tcp_states'
// INPUT table (Touch, for a Conn whose Fwd is FwdMasq) and its real
// server's replies by the OUTPUT table (TouchReply), as set_tcp_state does
// for a connection without IP_VS_CONN_F_NOOUTPUT; every other connection
// keeps the input-only table. Replies find their connection through a
// reverse index (reverse.go): a second bounded store keyed by the reply's
// (client, real server) tuple whose entries point at the connection's slot
// and generation, so a reply costs one lock-free lookup plus one read of
// the connection's own entry, and an index entry whose connection has gone
// is simply not answered, reclaimed by later inserts and by Sweep.
//
// # Layout
//
// A Table is two flat arrays allocated once by New and never grown: 64-byte
// bucket headers and 64-byte entries, 14 entries per bucket. They live in
// one anonymous mapping outside the Go heap (mem_mmap.go), aligned to 2
// MiB, advised onto transparent huge pages and faulted in by New, so no
// packet ever pays a page fault. The collector neither scans nor sweeps
// that memory and does not count it in the heap it paces itself by: a
// table on the heap lengthens the stop-the-world pauses (the runtime's
// pause work grows with the heap, not only with what it scans) and would
// let the heap goal grow by the table's size. Table.Close unmaps at once; a table nobody closes is
// unmapped when the collector finds it unreachable, and every method that
// reads the arrays keeps its Table alive while it runs, so that cannot
// happen under a call. Under
// the race detector the arrays are an ordinary pointer-free Go allocation
// instead, so the detector sees every access. The slot arrays are sized
// for 80% load at Config.Capacity, and a live-entry counter enforces the
// capacity exactly; with headers, slack and the expiry index (4 bytes a
// slot) a connection costs 90.8 bytes (EntrySize, the entry alone, is 64;
// IPVS spends 128).
//
// A key hashes (a wyhash-style multiply mix with a random per-table seed,
// so a flood cannot be aimed at a few buckets) to two candidate buckets
// and a 32-bit tag; inserts go to the emptier one. A header holds the 14
// tags, a bitmask of used slots and an insert latch in one cache line.
// Lookup loads both headers before scanning either so their misses
// overlap, then reads only the entries whose tag matches. The headers
// are packed in an array of their own rather than each placed beside its
// entries: a lookup reads two headers and at most one entry, and the
// packed headers, a fifteenth of the table, keep far more of themselves
// and of the page-table entries that map them in the caches. Beside its
// header the entry would share the header's page, but each header read
// would then cost as much as an entry read, and a lookup that misses (every
// new connection's) reads headers alone; BenchmarkLookupBatch's miss case
// shows the difference.
//
// # Concurrency
//
// Every word of an entry is read and written with atomics, except that
// publish, which fills a free slot no other goroutine may write, uses
// plain stores on amd64 (publish_amd64.go: x86 keeps stores in order, so
// they publish as release stores would, without Go's fencing XCHG). The
// meta word packs status (free, busy, live, deleted-template), a generation bumped on
// every release, the State and the expiry (milliseconds since New), so
// that every change to a live entry is one compare-and-swap:
//
//   - Lookup takes no lock. It reads an entry's key words between two loads
//     of meta and trusts them only if status and generation did not change
//     (a sequence lock without writers waiting on readers).
//   - Touch is one CAS on meta: the transition, the new expiry and, for the
//     goroutine whose CAS wins, the Hooks call. Two queues touching one
//     flow each apply their packet exactly once. A packet that leaves the
//     state as it was writes nothing while the stored expiry is within
//     the slack of the exact one (see Expiry slack below), so an
//     established flow's line stays shared and clean.
//   - Release (expiry, eviction, reopening SYN) is a CAS from the meta the
//     releaser saw to free with the next generation; the single winner does
//     Unbind and the template accounting. Conn carries slot and generation,
//     so Touch on a released entry reports Gone.
//   - Insert must be "insert if absent" across queues, so it takes a spin
//     latch on its two candidate buckets (lower index first) for the
//     few hundred ns it takes to check, make room and publish. Readers, Touch,
//     Sweep, eviction of other buckets and Range never take it. Bind runs
//     before the entry is published, so no Transfer or Unbind of an entry
//     can reach the Hooks before its Bind.
//
// Per-server counts are exact in the sense that matters to schedulers:
// each connection produces exactly one Bind, one Unbind and the Transfers
// between; calls from different goroutines are not ordered with each
// other, so a count can be off by the updates in flight for an instant.
//
// # Shared table versus one table per queue
//
// A table per queue would make updates owner-only, but a flow moved to
// another queue by an RSS change must still be found, so every miss would
// have to probe the other queues' tables (a miss paid N-1 times per new
// connection) and templates would be shared anyway. The shared table's
// fast path writes nothing on most packets and takes no lock, and N
// tables multiply the working set that misses the caches, so sharing
// costs no throughput: BenchmarkParallel compares the two, and its worst
// case, both queues writing one flow on every packet, against an
// uncontended packet. Hence one shared table.
//
// # Expiry and eviction
//
// There is no timer per entry. An entry stores its expiry; Lookup, Touch
// and Range treat an expired entry as absent, and Insert reuses it.
// ExpireDue releases every connection whose expiry has passed, as IPVS's
// per-connection timers would, through an expiry index of lower-bound
// seconds per slot and per group of 56 slots (expiry.go), so the Hooks
// learn of an expiry as soon as it is called, for a cost of one word read
// per 56 slots plus the expiries; it takes no lock and is safe beside the
// workers. A connection expired this way (or lazily, or by eviction of an
// expired entry) gives back its template as of its expiry time, however
// late it is released. Sweep, a plain incremental slot scan, and
// SweepTemplates free the rest. Time comes from a Clock: SystemClock is a
// 1 ms coarse clock (one atomic load per read), ManualClock lets tests
// run hours of timeouts in milliseconds.
//
// # Expiry slack
//
// Refreshing the expiry on every packet would write every established
// flow's entry at each visit once visits are more than a millisecond
// apart, as they are at a million flows: the line turns dirty, costs a
// writeback when it leaves the cache, and takes its neighbours (which
// the other workers' flows share lines within a few hundred bytes of)
// from the other cores. So a connection stores its expiry with a slack
// of its timeout/64 (slack in table.go):
//
//   - A packet that changes the state, and a new connection, store the
//     exact expiry (now plus the state's timeout) plus the slack.
//   - A packet that leaves the state as it was writes nothing while
//     now+timeout <= stored <= now+timeout+slack; otherwise it stores
//     now+timeout+slack. A busy flow is written once per slack.
//
// So an entry never expires before IPVS's timer would, and at most
// timeout/64 after it. That is the lateness the kernel's own timer wheel
// allows: it rounds a timer due in d jiffies up to its level's
// granularity, which is more than d/64 at every level (the derivation is
// at slack). The upper bound makes ipvsadm --set exact in its IPVS
// meaning: the next packet after a timeout changed moves the entry onto
// the new timeout, up or down. Everything else keeps its exact meaning:
// state changes write, ExpireNow and Reopen release at once, templates'
// timers are unchanged, and a connection that sync installs or updates
// (sync.go) stores its exact expiry; a meta bit tells the slacked
// expiries from those. Range (afvsadm -L -c) shows a slacked expiry less
// the slack of its state's timeout: the full timeout right after a
// write, counting down from the last write, as IPVS would show it had
// the last packet come then; so up to the slack less than IPVS, while
// the entry may live up to the slack past what is shown. After --set
// changes a timeout, an entry not written since shows its expiry less
// the new timeout's slack until its next packet. drop_entry's idle test
// takes the stored expiry less the timeout as the last packet's time,
// no earlier than the real one, so it never finds idle an entry IPVS
// would not. The expiry index (expiry.go) files the stored expiry, a
// bound it only ever needs to be below.
//
// A SYN that IPVS's is_new_conn_expected lets go (Sysctls.ConnReuseMode)
// releases the entry at once (Touch answers Reopen) but leaves its
// accounting to Retire, which the caller makes after scheduling the new
// connection, as ip_vs_conn_expire_now leaves the unbind to a timer that
// runs after the packet; ExpireNow does the same for expire_nodest_conn.
//
// When an insert finds no room (the table at capacity, or both candidate
// buckets full) it evicts, in IPVS's spirit: first an expired entry of
// either of the key's two buckets, then the oldest half-open (SYN_RECV,
// or SYNACK, where secure_tcp puts a SYN) or inactive entry of the fuller
// of the two, else of the other, or, when only the capacity bound is hit,
// from 8 more buckets on a rotating cursor. ESTABLISHED and SYN_SENT
// connections are never evicted. With nothing evictable the insert is
// refused and counted (Stats.Refused). "Oldest" is by creation time among
// those candidates, a bounded sample like IPVS's drop_entry, not a global
// order. Searching the fuller bucket alone when it has a victim reads one
// bucket's entries instead of two, the bulk of an insert's cost in a
// full table of millions, and takes the room where the load is higher;
// the other bucket's expired entries are found through the expiry index
// without reading its entries. The new entry takes the victim's slot when
// it was in one of the key's buckets.
//
// # Flood defence
//
// Defense holds IPVS's drop_entry, drop_packet and secure_tcp with the
// kernel's values and transitions (update_defense_level), the pressure
// being free entries below amemthresh; DefenseTick is the kernel's
// once-a-second defence work, ToDropPacket its ip_vs_todrop, and
// secure_tcp switches Touch, TouchReply and Insert to tcp_states_dos,
// each direction to its half. drop_entry needs each entry's packet count up to 9, kept in
// spare low bits of the ports word and no longer written once past 8. It
// is its only reader, so a connection made while drop_entry is 0 starts
// counted past 8 and its packets never write the count (countPacket).
//
// # Persistence templates
//
// Templates live in a second, smaller store of the same layout, shared by
// all queues. A template's meta payload is its control count (IPVS's
// n_control): a connection inserted with a TemplateRef increments it with
// a CAS that fails if the template expired or was deleted, and re-arms
// the template's timer to now plus its timeout (ip_vs_sched_persist);
// releasing the connection only decrements it. The timeout is fixed when
// the template is made. A timer that runs out while the count is not zero
// re-arms itself for 60 s, which becomes the template's timeout, as
// ip_vs_conn_expire does; the table applies such firings when it next
// looks at the template, from the times alone, so the result does not
// depend on when it looks. DeleteTemplate (server gone, or quiesced with
// expire_quiescent_template) stops it matching at once; it is freed with
// its last connection.
//
// # Batched lookups
//
// At millions of entries a Lookup is two dependent DRAM round trips (the
// overlapped bucket headers, then the entry), while independent line
// loads, many in flight at once, complete an order of magnitude faster
// each (BenchmarkMemoryFloor measures both). LookupBatch,
// which the dataplane calls once per batch of 64 frames, turns latency
// into throughput the way DPDK's and VPP's bulk lookups do. It works in
// stages over two groups of 32 keys: hash a group and prefetch both
// headers of every key; pick each key's candidate entry by tag and
// prefetch it; then do the real lookups, which hit the caches. The stages
// of the two groups interleave, so one group's lines load while the core
// works on the other. The prefetches are PREFETCHT0 instructions in a
// few lines of amd64 assembly (prefetch_amd64.s; Go has no prefetch
// intrinsic): a load that misses holds its place in the core's window
// until DRAM answers, a prefetch retires at once, which is why plain
// loads in separate passes, the first version, were slower than the
// pipeline. A key whose tags match nowhere is a miss without reading any
// entry.
//
// The lookups stay bunched at the start of a batch rather than spread
// over the frames' processing (prefetching each group of keys a group or
// more ahead of the frames that use it, which hides misses behind
// processing where a prefetch retires at once). On a machine where a
// prefetch that misses the TLB holds up the core until its page walk is
// done, as on the development host, prefetches overlap each other's
// walks but not other work, so a burst costs less than the same
// prefetches spread out: BenchmarkPrefetchOverlap tells which kind of
// machine it runs on, and a LookupBatch split into such a pipeline was
// measured no faster there.
//
// # Figures
//
// The README's benchmark section has the measured costs of lookups,
// inserts, batched lookups and GC pauses by table size, from
// go test -bench 'Lookup|Insert|MemoryFloor|GCPause|Parallel'.
package conntrack
