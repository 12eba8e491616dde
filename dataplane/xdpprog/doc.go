// Package xdpprog holds AFVS's XDP programs and their loaders. It is the
// only package that imports cilium/ebpf. The programs are written as
// cilium/ebpf asm instructions in Go and verified and loaded at run time,
// so building AFVS needs no clang and the repository holds no object files.
//
// # Steering
//
// Steering runs on every receive queue of the director's client-facing
// interface and decides, per frame, whether the userspace dataplane or the
// kernel gets it. It parses Ethernet, at most one 802.1Q tag, the IPv4
// header (version 4, IHL at least 5, header inside the frame) and the
// TCP (20 bytes) or UDP (8 bytes) header, then looks up the destination in
// the services hash map: first {addr, port, proto}, then {addr, 0, proto},
// port 0 being a service on all ports. A hit is redirected only when the
// frame's destination MAC is an owner MAC: the interface's own, or one more
// the operator configured (SetOwnerMACs; the owners array map holds both
// in one value, compared as a word and a half-word). Any other destination
// - a unicast MAC a switch flooded to every port because it has not learnt
// where it lives (a dead director's, right after a failover), a broadcast,
// a multicast - is XDP_PASS, counted as PassOtherMAC, and the kernel drops
// what is not for the host, so a director never forwards a frame sent to
// another. An owner frame calls bpf_redirect_map(xsks, rx_queue_index,
// XDP_PASS): it goes to the AF_XDP socket registered for the queue it
// arrived on, or, when no socket is registered, to the kernel; unless its
// source is in the blocklist (an LRU hash of source -> end of the block in
// bpf_ktime_get_ns time, which the director fills with sources far over
// their SYN rate; a TCP/UDP frame's source, never an ICMP error's; an IPv6
// source by its prefix, in a second LRU hash: blocklist6.go), when it is
// XDP_DROP, counted as Blocked. The blocklist is looked up only while a
// gate word of its family is set, which Block sets before it writes a
// block and a timer clears once every block has ended: most of the time
// nothing is blocked, and a matched frame then skips the lookup.
// Everything else - ARP, ICMP other than the errors below, IPv6, SSH,
// health checks, other addresses and ports, frames cut short inside a
// header - is XDP_PASS, so the host stays reachable while the director
// runs. Non-first IPv4 fragments carry no ports; they match the key
// {addr, 0, proto, flags=1} that SetServices writes for every VIP and
// protocol, and are redirected so the worker can send them after their
// first fragment. An IPv6 fragment to a VIP, first or not, matches the same key of the IPv6 map by the protocol its
// Fragment header names, and is redirected for the worker to drop and
// count (ipv6_fragment). An ICMP error that IPVS relates to
// a connection (destination unreachable, source quench, time exceeded),
// not itself fragmented, quoting an IPv4 TCP or UDP packet (not a
// non-first fragment) whose source is the message's destination, is
// looked up by the quoted source address, protocol and port: the reply of
// a virtual service that a router sent back toward the VIP. It is
// redirected like the service's own traffic, so the worker can pass it to
// the connection's real server. An ICMPv6 error to an IPv6 VIP
// (destination unreachable, packet too big, time exceeded, parameter
// problem) is matched the same way through its quoted IPv6 packet, whose
// extension headers are walked as the packet's own are (steeringICMP6);
// every informational ICMPv6 message, neighbour discovery and MLD among
// them, is the kernel's. Map keys hold address and port in network order, as they sit in
// the packet, so the program copies them without swapping bytes.
//
// # Local-node flows
//
// Just before it would redirect a frame, the program checks a one-word
// gate (afvs_local_on, set while some real server is the director's own
// address) and, when it is on, looks the frame's 5-tuple up in the
// afvs_local hash map (AllowLocal adds a connection of the local node,
// ForgetLocal removes it). A hit is passed to the kernel (XDP_PASS,
// counted as PassLocal) and adds one frame, its IPv4 total length and its
// TCP flags byte (ORed) to the flow's value, which TakeLocalUse reads and
// resets. Non-first fragments carry no ports and are never matched. The
// map holds MaxLocalFlows flows; AllowLocal then answers ErrLocalFull.
//
// # VS/NAT replies
//
// A frame to no service may be a VS/NAT real server's reply: the program
// then looks up its source, {saddr, sport, proto, flags=2} and
// {saddr, 0, proto, flags=2}, and a hit goes the way of a service match
// (owner MAC, socket) unless the destination is one of the director's own
// addresses, {daddr, 0, 0, flags=4}: replies to the director's own
// connections to a real server, such as its health checks, stay the
// kernel's. ICMP from a NAT real server's address, {saddr, 0, 1,
// flags=2}, goes the same way, so its errors about the connections reach
// the dataplane to be translated.
//
// # Service gate
//
// Every lookup in the services maps above is made only while a one-entry
// array, read through its value's address, says the map can hold a key it
// would find (servicegate.go): per family, protocol and direction a bitmap
// of the ports services and VS/NAT real servers use (bit 0 for the
// all-ports keys), and per family a word for any VS/NAT real server (its
// ICMP key) and one for any director address. A frame to no service - the
// host's own traffic - so usually passes without a lookup. SetServices
// widens the gate before it changes the map and narrows it to the new set
// only after, so the gate always covers every key in the map.
//
// # Counters
//
// Each program keeps its counters in a PERCPU_ARRAY with one slot: a block
// of uint64 fields per CPU. The program looks the block up once per frame,
// keeps the pointer on its stack, and increments fields with plain loads
// and stores, which is safe because XDP runs with preemption disabled and
// each CPU owns its copy. Every frame moves exactly one outcome counter,
// so the outcome counters explain every frame; Stats sums the per-CPU
// copies. The other programs also count Total; the steering program's
// Total is the sum of its outcomes, which saves one update per frame.
//
// # Decapsulation for VS/TUN real servers
//
// This kernel has no ipip device, so a TUN-mode real server runs Decap46 on
// its interface: an unfragmented IPv4 packet of protocol 4 (IPIP) or 41
// (IPv6 in IPv4), or an IPv6 packet of next header 41 or 4, whose inner
// destination is one of its VIPs (a map per family) loses its outer
// header. The program saves the 14-byte Ethernet header on its stack, calls
// bpf_xdp_adjust_head to drop Ethernet plus outer header, and writes the
// Ethernet header back in front of the inner packet, with the inner
// family's ethertype, then returns XDP_PASS. The stack then sees
// the client's original packet addressed to the VIP it holds on lo. Saving
// the header before adjusting (rather than moving it first) means a helper
// failure leaves the frame untouched.
//
// # Benchmark baselines
//
// DropSink counts packets and bytes and drops: on a benchmark's receiving
// end it measures the offered load. RedirectAll sends every untagged IPv4
// frame, and every untagged IPv6 frame carrying UDP, to its queue's
// socket, feeding the plain MAC-swapping forwarder the director is
// compared with.
//
// # Attaching
//
// Attach goes through a bpf_link (BPF_LINK_CREATE), never the netlink
// attach: the link lives exactly as long as the file descriptors referring
// to it, so when the director exits, even by SIGKILL, the kernel detaches
// the program and the interface is not black-holed. ModeAuto tries native
// (driver) mode and falls back to generic; Attachment.Mode reports which
// one took. The link is created in the network namespace of the calling
// thread, which must be the namespace of the interface. Closing a loader
// object (Steering, Decap46, ...) does not detach its attachments: each
// holds its own reference to the program.
package xdpprog
