// Package nic is everything AFVS asks the kernel about network interfaces:
// their shape (index, MAC, MTU, RX queue count, addresses), which CPU serves
// each RX queue, how to reach a real server (egress interface, next hop,
// source address, MTU), the link-layer address of that next hop, and the TX
// checksum offload switch. It is the only package that imports
// vishvananda/netlink, so the rest of the director stays testable without
// root.
//
// A Kernel binds these queries to one network namespace through a
// netlink.Handle opened in it (Open); the package-level functions use the
// caller's namespace. Tests and the daemon run in namespaces of their own,
// which is why nothing here assumes the host namespace. Two caveats follow
// from Linux itself: /proc/interrupts is global, but /sys/class/net shows the
// namespace that mounted sysfs, so sysfs is consulted only for a Kernel of the
// caller's namespace and netlink attributes are used otherwise.
//
// Queue to CPU pinning (Planner) follows the interrupt: a worker that polls
// RX queue q runs best on the CPU that takes q's IRQ, because the packet data
// is then hot in that CPU's cache and the wakeup needs no IPI. The IRQ of a
// queue is found by matching the per-queue names drivers register in
// /proc/interrupts (eth0-TxRx-0, i40e-eth0-TxRx-0, virtio2-input.0,
// mlx5_comp0@pci:0000:3b:00.0, ...), and its CPU is the first CPU of
// /proc/irq/N/smp_affinity_list that the process may run on. Devices with no
// per-queue IRQ, such as veth, get their queues spread round-robin over the
// allowed CPUs. A configured override wins over both. Every Assignment carries
// the reason for its choice so that afvs can log it.
//
// Neighbors keeps a cache of the kernel's neighbour table, fed by a netlink
// subscription that first lists the existing entries. The dataplane must
// never send to a zero MAC, so Lookup answers only for entries in a state in
// which the kernel itself would transmit (REACHABLE, STALE, DELAY, PROBE,
// PERMANENT) with a non-zero address. Next hops the dataplane needs are
// registered with Want; for those the cache asks the kernel to resolve, by
// an RTM_NEWNEIGH with NTF_USE, which is what a locally sent packet would do
// (neigh_event_send), and it asks again periodically while an entry is
// missing, STALE or FAILED. AF_XDP traffic bypasses the kernel's neighbour
// layer, so without these nudges a STALE entry would never be confirmed and
// would eventually be garbage-collected.
//
// DisableTxChecksum switches off TX checksum offload through the SIOCETHTOOL
// ioctl. On veth, offload leaves TCP checksums partial (only the pseudo-header
// sum), which is harmless inside the kernel but wrong on a frame an AF_XDP
// director picks up and forwards verbatim.
package nic
