// Package sim is the scheduler simulator behind `afvs-lab sim`: it replays a
// connection trace through the very code the director runs, so that what a
// researcher measures offline is what the dataplane would have done.
//
// The trace has one event per line, time_ms,proto,client_ip,client_port,
// vip,vport,flags, with proto tcp or udp and flags any of S, A, F, R for
// TCP and - for UDP; client_ip and vip are both IPv4 (dotted quad) or both
// IPv6 (as netip writes them, without brackets or zone:
// 0,tcp,2001:2:0:64::1,40000,2001:2::1,80,S); admin events are time_ms,admin,<ipvsadm arguments>
// (the rest of the line, commas included); lines starting with # are
// comments. Times must not decrease. The output, a public contract, has one
// line per new connection (including those a persistence template decided):
// time_ms,proto,client_ip,client_port,vip,vport,real_ip:real_port (an
// IPv6 real server as [addr]:port), or - as the real server when the
// connection was dropped. Packets of existing
// connections, and packets dropped before any connection exists (a non-SYN
// TCP packet without one, unless sloppy_tcp lets it make one; a VIP no
// service has), write nothing; the summary counts them by drop reason.
//
// Every trace event becomes a minimal Ethernet/IPv4 or IPv6/TCP or UDP
// frame, with valid checksums (the IPv4 header's, and TCP's or UDP's over
// the family's pseudo-header), written into one reused buffer and handed to
// dataplane.Processor.Process: the same parse, connection table, persistence
// templates and scheduler as a worker, against a dataplane.Snapshot built by
// dataplane.Build. The simulator only reads Processor.Last to learn what was
// decided; it never chooses a real server itself. Admin events are parsed
// with the ipvsadm parser, applied with apply.Command to a copy of
// the service table, and published as a new snapshot built with the same
// ID registry and load counters, as the control plane does live.
//
// Time comes from a conntrack.ManualClock set to each event's time_ms.
// Before each event the simulator releases every connection whose timeout
// has passed (conntrack.Table.ExpireDue, the daemon's own expiry path), so
// a connection leaves the active and inactive counts the least-connection
// schedulers read exactly at its expiry millisecond (its timeout plus the
// table's slack, timeout/64: conntrack's doc) as far as any event can
// tell, as IPVS's per-connection timers would have it; a persistence
// template gives back a control as of its connection's expiry time. The
// IPVS sysctls come from Options.Sysctls (afvs sim takes the config's ipvs
// section).
//
// Observation goes through the table's hooks: a thin wrapper forwards every
// Bind, Transfer and Unbind to sched.Loads unchanged and, after each
// increase, reads Loads.Active of that server for its peak. Active counts
// only rise inside Bind and Transfer, so this equals sampling every server
// after every event without the per-event cost. The plot samples every
// server's Active at most MaxSamples times, halving its resolution when the
// trace is longer than that.
//
// For each admin event the summary reports how many flows and persistence
// templates "moved". Moved is defined by a probe, not by the live path,
// because on the live path an existing connection never moves: IPVS keeps
// it on its server or, if the server was deleted, drops its packets (those
// are reported as orphaned). The probe takes the connections (and,
// separately, the templates) alive just before the event, sorted by key,
// and schedules each of them as a new connection, in that order, on a
// freshly built copy of its service, once with the table before the event
// and once with the table after it; each probe starts from zero load and
// counts its own picks as active connections. A flow moved when the two
// probes send it to different real servers (or one of them finds none).
// For hash schedulers (sh, dh, mh) this is exactly the share of flows a
// stateless director would remap; for rr, wrr and the least-connection
// family it is the change in the assignment the scheduler would make from
// the same starting state. Templates are probed with their own key: the
// client address masked by the service's netmask and port 0.
//
// The workload generator writes traces in the same format: Poisson
// arrivals, exponential, lognormal or Pareto connection durations with a
// given mean, a client population, and a matching config whose real servers
// have heterogeneous weights. It is seeded, so one seed is one trace.
package sim
