// Package header reads and writes Ethernet, 802.1Q, IPv4, IPv6, TCP, UDP,
// ICMPv4 and ICMPv6 headers in place, over the byte slices the dataplane
// receives from AF_XDP.
//
// Each header is a named byte slice (Ethernet, IPv4, IPv6, TCP, UDP, ICMPv4,
// ICMPv6) whose
// methods decode or encode one field at a fixed offset. Nothing is copied into a
// struct and nothing is allocated: a worker handles millions of frames a second
// and every frame lives in UMEM memory it does not own for long. The accessors
// trust their caller about length; Parse is the one place that checks it, so
// code that holds a Packet returned with OK may index the frame freely.
//
// Parse walks a frame once: Ethernet, at most one 802.1Q tag, then by the
// ethertype IPv4 and TCP or UDP, or IPv6, its extension headers and TCP, UDP
// or ICMPv6. It records offsets and the fields the connection table and the
// schedulers need in a caller-owned Packet, and returns a Reason. Any Reason but
// OK means the director drops the frame and counts it under Reason.String(),
// which is a stable snake_case name used as a metric label. The rules follow
// what the Linux input path (ip_rcv_core, tcp_v4_rcv, __udp4_lib_rcv) enforces
// before IPVS ever sees a packet, because IPVS relies on them:
//
//   - IPv4 options are allowed and skipped; the real server's stack handles
//     them. Their lengths are walked as ip_options_compile walks them: an
//     option (other than End of Options List and No Operation) whose length
//     byte is missing, below 2, or runs past the header is malformed.
//   - A source address no host may use (0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4,
//     240.0.0.0/4 with 255.255.255.255) is a martian source, which Linux's
//     routing input drops. TTL 0 is dropped too: no host may send it (RFC
//     1122 3.2.1.7) and no router may pass it on.
//   - The IPv4 header checksum is verified (it is 20-60 bytes, cheap to sum),
//     since Linux drops such packets before IPVS and we must not forward them.
//   - TCP and UDP checksums are not verified: the director does not change the
//     L4 header and the real server checks them end to end.
//   - Fragments (MF set or a non-zero offset) are reported as Fragment, with
//     the IPv4 fields filled: ParseFragment then reads the first fragment's
//     ports (its UDP length may exceed it) or none for a later one, and the
//     dataplane makes a later fragment follow its first.
//   - ICMP is reported as UnknownProtocol with the IPv4 fields filled:
//     ParseICMPError then reads an error's quoted packet with the checks of
//     IPVS's ip_vs_in_icmp.
//   - Ethernet padding after the IPv4 total length is tolerated and ignored.
//
// IPv6 follows ip6_rcv_core, which is all Linux runs before IPVS's hook
// (destination options and routing headers are processed after it):
//
//   - The payload length must fit in the frame; padding after it is ignored.
//     A payload length of 0 with a hop-by-hop header announces a jumbogram,
//     which cannot fit in a frame the director receives: the header does not
//     fit in the (empty) payload and the frame is dropped as bad_ext_header.
//   - A multicast or loopback source, and a loopback destination or a
//     multicast one of scope 0 or 1, are dropped as Linux drops them. So are
//     IPv4-mapped addresses (::ffff:0:0/96), which no IPv6 node uses and which
//     would alias IPv4 flows in the connection table, keyed by that form. A
//     hop limit of 0 is dropped as IPv4's TTL 0 is.
//   - Hop-by-hop options (first only, as RFC 8200 requires), routing and
//     destination options headers are walked, at most MaxIPv6ExtHeaders of
//     them; each must lie inside the payload. The options of a hop-by-hop
//     header are checked as ip6_parse_tlv checks them (see hopByHopValid);
//     the contents of routing and destination options headers are the real
//     server's business, as IPv4 options are.
//   - A Fragment header is dropped (ipv6_fragment) as IPv4 fragments are,
//     atomic fragments included; so is any other next header but TCP, UDP
//     and ICMPv6 (unknown_next_header): AH, ESP, No Next Header, Mobility.
//   - TCP and UDP are checked as for IPv4, except that a UDP length of 0
//     means the whole payload, as __udp6_lib_rcv reads it. ICMPv6 needs its
//     8-byte header. L4 checksums are not verified.
//
// Checksum helpers compute the internet checksum (RFC 1071), the TCP/UDP
// pseudo-header sum, and the incremental update of RFC 1624 equation 3, which
// lets a rewrite of one field adjust a checksum without summing the packet again.
package header
