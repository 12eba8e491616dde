// Package bench is the packet-rate benchmark harness behind "afvs-lab bench"
// and "make bench". It measures, in one run and on one path, how many
// minimum-size UDP frames per second reach a sink with no forwarder, with a
// plain AF_XDP forwarder, and with afvs in VS/DR and VS/TUN mode, and
// prints each rate with its ratio to the first two.
//
// # The path
//
// Every scenario builds its own three namespaces, named after Prefix, and
// removes them when it ends, whether it worked or not:
//
//	gen eth0 --veth-- eth0 dir eth1 --veth-- eth0 sink
//	198.18.0.2        198.18.0.1  198.18.1.1    198.18.1.2
//
// The generator is Go on an AF_XDP TX-only socket in copy mode on gen's
// eth0. Every UMEM chunk holds the same 60-byte Ethernet/IPv4/UDP frame to
// the VIP 198.19.0.1 port 9 (64 bytes with the FCS a veth does not carry);
// per frame it only rewrites the UDP source port, cycling through Flows
// ports so the director sees that many flows, and patches the checksum.
// It sends as fast as the kernel completes frames for a fixed time. Copy
// mode TX goes through the device's normal transmit path, so a veth peer
// receives it whether or not that peer runs XDP.
//
// The sink is xdpprog's drop sink: an XDP program that counts and drops
// every frame. Its packet counter, read before and after the run, is the
// measurement. Because it drops ARP as well, the sink never answers for
// 198.18.1.2; the director namespace instead holds a permanent neighbour
// entry for it, which afvs's neighbour cache accepts like any resolved
// one. IPv6 is disabled in every namespace so that no router solicitation
// or MLD report is counted, except in the IPv6 scenarios' director.
//
// # The scenarios
//
//   - offered: the sink sits on the director's eth0, the generator's next
//     hop. No forwarder can deliver more than this.
//   - baseline: RedirectAll on dir eth0 feeds one AF_XDP socket; a Go loop
//     copies each frame into a TX-only socket on eth1, rewrites both MACs
//     and sends it. This is the director's two-interface path (the same
//     socket sizes, batch, CPU pinning and cross-UMEM copy) with no
//     parsing, connection table or scheduling.
//   - dr and tun: the real "afvs run" binary in the director namespace,
//     with a config of one UDP service whose only real server is the sink.
//   - nat and nat-reply: afvs in VS/NAT mode, receiving on eth0 and eth1
//     (the LVS manual's two-interface NAT layout), the sink its real
//     server on port NATRealPort. nat measures the client -> real server
//     direction. nat-reply opens every flow from the generator first, then
//     measures the replies: a second generator (NewReplyGenerator) on the
//     sink's eth0 sends each flow's reply from NATRealPort to the
//     generator's port through the director's eth1, and the drop sink sits
//     on the generator's eth0. Both report their rate over dr's.
//   - offered6, baseline6, dr6 and tun6: the same four paths with IPv6
//     frames, the shortest UDP frame over IPv6 (62 bytes, 66 with the
//     FCS), from 2001:2::2 to the VIP 2001:2:0:100::1 port 9; the sink's
//     2001:2:0:1::2 is the real server, by MAC rewrite in dr6 and
//     IPv6-in-IPv6 in tun6. Only the director's namespace runs IPv6: its
//     interfaces get 2001:2::1/64 and 2001:2:0:1::1/64 without duplicate
//     address detection, a permanent neighbour entry for the sink, and no
//     router solicitations. The baseline's XDP program redirects UDP over
//     IPv6 as well as IPv4; the MAC rewrite does not look at the family.
//     Each reports its rate over the IPv4 scenario's as the median of the
//     ratios of each round, both measured in it: the inverse is what an
//     IPv6 frame costs the path against an IPv4 one.
//
// Before measuring, each scenario sends short bursts until the sink has
// counted something, so start-up (attach, neighbour lookup, the first
// connection entries) stays out of the figures. After the timed run the
// harness waits settleTime before reading the sink, so frames still in a
// forwarder's rings are counted, then, where the forwarder has an AF_XDP
// socket, until it has received or refused every frame its XDP program
// redirected (drainForwarder: a forwarder the machine held back drains
// its receive ring first), and, should the sink have counted
// nothing by then, as on a machine too busy to run the forwarder beside
// the generator, until it counts some and its count holds still);
// rates divide by the generator's sending time only.
//
// # Reading the numbers
//
// On a veth every frame costs CPU on both sides of the pair, and the
// generator, the forwarder and the sink's softirq share the same cores, so
// the figures are only comparable within one run, as ratios. The report
// records the CPU count and the load average at the start of the run for
// that reason. With Rounds above one, the scenarios run interleaved round
// after round and each reports its median round with the spread, so a
// burst of load from elsewhere does not fall on one scenario alone.
//
// Every scenario with a forwarder also says where the frames it did not
// receive (sent - fwd rx) went, from counter deltas over the run (Loss):
// the receiving AF_XDP socket's XDP_STATISTICS (RX ring full: the
// forwarder did not take frames in time; fill ring empty: it did not give
// frames back in time), the XDP program's own counters (frames it saw,
// redirected, passed to the kernel), and the kernel's netlink counters and
// the veth driver's statistics of the receiving interface (tx_dropped of
// the sending veth end, where veth counts a frame it could not queue to
// its peer). veth adds the redirects the socket refused to its rx_dropped
// as well, so that figure is shown but not added again. A counter that
// could not be read is named, not shown as zero.
//
// Setting AFVS_BENCH_LOG=1 prints each afvs scenario's own log when it stops.
package bench
