// Package director runs the per-frame path of package dataplane on a host:
// the Director opens the interfaces' AF_XDP sockets, loads and attaches the
// steering program, resolves routes and neighbours, and starts one Worker
// per NIC RX queue; all of it through a Platform.
//
// The cut between the two packages is the kernel: everything that needs
// dataplane/nic, dataplane/xsk or dataplane/xdpprog (and through them
// cilium/ebpf and netlink) is here, and package dataplane needs none of
// them, so the simulator links the Director's forwarding code but not the
// Director. The Director uses only package dataplane's exported API.
//
// One Worker serves one NIC RX queue. It is locked to its OS thread and pinned
// to the CPU that serves the queue's IRQ. Each turn of its loop it reaps the
// TX completion ring, refills the fill ring, takes a batch of received frames,
// loads the current dataplane.Snapshot once, runs every frame through its
// dataplane.Processor, and queues the forwarded ones on the egress
// interface's socket. A frame is always in exactly one place: the ring it
// came from, the worker's batch, a TX ring, or the socket's free list (see
// package xsk).
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
//
// # Sending on another receiving interface
//
// With more than one receiving interface every worker also sends on the
// others: a VS/NAT reply arrives on the interface facing the real servers
// and leaves on the one facing the clients (the LVS manual's
// two-interface NAT layout), and a client frame may be for a real server
// behind another receiving interface. The kernel allows one UMEM per
// device queue unless sockets share it with XDP_SHARED_UMEM, and sockets
// sharing a queue's UMEM share its fill and completion rings too, so a
// second, send-only socket on a queue that already receives would still
// share the receiving socket's rings with its owner. The choice: a worker
// sends on one receiving socket of each other receiving interface, under
// that socket's mutex; the socket's owner calls it through sharedPort,
// which takes the same mutex around each call except the blocking Wait.
// The frame is copied into the other socket's UMEM, as for a send-only
// egress interface. Nothing locks with a single receiving interface.
//
// # The local node
//
// A real server on one of the director's own addresses (IPVS's local
// node) is served by the director's own network stack. The design,
// chosen because a worker cannot hand an AF_XDP frame back to the kernel:
// the worker schedules the connection as any other, writes its first
// packet into a TUN device the Director owns (Platform.OpenLocal), and
// before that adds the connection's 5-tuple to the steering program's
// flow map, so that every later frame of the connection is passed to the
// kernel by the program itself and never reaches a worker. Housekeeping
// reads the map's per-flow use once a second to move the connection
// table's state and counters and to forget flows whose connection has
// expired. Frames a full map leaves with the worker still reach the stack
// through the TUN device. local.go has the details.
package director
