// Package sched holds AFVS's connection schedulers: the IPVS algorithms rr,
// wrr, lc, wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo, ovf and twos, each
// making the same choice as its kernel module (net/netfilter/ipvs/ip_vs_*.c,
// named in each file) for the same dests, weights and connection counts,
// including tie-breaking.
//
// A Scheduler is immutable configuration (the dest list and weights) plus
// a little shared mutable state: the rr position, wrr's current weight, the
// lblc/lblcr cache. The control plane builds a new Scheduler off the hot path
// with New whenever dests or weights change and publishes it atomically;
// passing the old one as Options.Prev carries over what IPVS itself keeps
// across such a change. New is Compile, which changes nothing in force, then
// Install, which installs the thresholds and detaches the old scheduler, so
// a change refused between the two leaves the scheduler in force as it was.
// Workers call Schedule concurrently. Where the kernel
// takes svc->sched_lock per pick (rr, wrr) the state is one word updated by
// compare-and-swap; where it takes the lock only to insert (lblc, lblcr) a
// mutex is taken only then, and lookups stay lock-free.
//
// Dest order matters: every tie-break and the sh, dh and mh tables follow
// the order of the dests given to New, which must be the kernel's
// svc->destinations order. The kernel inserts each new dest at the head of
// that list, so it is the reverse of the -a order. afvs keeps the -a order
// in its model (vs.Table, and a config file's reals list, which acts as if
// each real server were added with -a in file order) and KernelOrder turns
// it into the scheduler's order where the dataplane compiles a service. An
// edit (-e) keeps a dest's place in the model, and a reload keeps the place
// of every dest it keeps (the kernel would not re-add it) and appends new
// ones to the -a order in file order (vs.Table.KeepDestOrder), so a dest
// reaches the head of the kernel's list only by being added.
//
// Live load lives in Loads, indexed by a dest ID that is unique across all
// services: active and inactive connection counts and IPVS's overload flag,
// which the -x/-y thresholds set and clear with the hysteresis of
// ip_vs_bind_dest and ip_vs_unbind_dest. The connection table drives Loads
// through its Bind/Transfer/Unbind hooks. Weight 0 quiesces a dest: no
// scheduler picks it, while its existing connections continue elsewhere in
// the dataplane.
//
// The kernel's least-connection family scans every dest per pick. Here lc,
// wlc, sed and nq keep a tournament tree whose leaves are refreshed by the
// Loads hooks, so a pick is O(1) and costs the same at 1000 dests as at 10,
// while the tree's left-wins-ties merge keeps exactly the scan's first-of-
// equals choice. The differential tests compare every scheduler with a plain
// transcription of its kernel loop on random dests, weights, loads and admin
// changes.
//
// Hash schedulers (dh, sh, mh) hash addresses as IPVS does: an IPv4 address
// as its 32-bit value, an IPv6 address as the XOR of its four words. mh uses
// the kernel's fixed hsiphash keys, so two directors with the same
// configuration send a flow to the same real server; that is what lets
// several directors share a VIP behind ECMP.
package sched
