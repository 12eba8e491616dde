// Package encap rewrites a received frame into the frame the director
// transmits to a real server, in place in the AF_XDP buffer it arrived in, and
// builds the ICMP error IPVS sends when a tunnelled packet would not fit.
//
// VS/DR (direct routing) leaves the IP packet alone: the real server holds the
// VIP on a loopback interface, so only the Ethernet addresses change. DR sets
// the destination MAC to the real server's (or the next hop's) and the source
// MAC to the egress interface's.
//
// VS/TUN wraps the client's IPv4 packet in an outer IPv4 header (IP-in-IP, RFC
// 2003, protocol 4) from the director to the real server. An AF_XDP frame sits
// in a UMEM chunk with headroom in front of it, so IPIP moves only the 14 or 18
// bytes of Ethernet header (the VLAN tag stays) 20 bytes towards the start of
// the chunk and writes the outer header into the gap: the client's packet is
// never copied. Only when the headroom is under 20 bytes does it shift the
// packet towards the end of the buffer, and it refuses when even that does not
// fit. The outer header copies TOS and DF from the inner one, as IPVS does,
// uses TTL 64 and carries a full header checksum; Ethernet padding after the
// inner packet is dropped. For the identification field see IPIP.
//
// IPVS refuses to tunnel a DF packet whose encapsulation exceeds the egress MTU
// and answers the client with ICMP destination unreachable, fragmentation
// needed, advertising the egress MTU minus the 20 bytes of outer header
// (ensure_mtu_is_adequate in ip_vs_xmit.c calls icmp_send). NeedsFrag detects
// that case and FragNeeded builds the reply frame. A packet without DF that
// does not fit is split by FragmentIPIP into two inner fragments, each
// tunnelled, which any real server reassembles after decapsulation;
// FragmentDR does the same for DR, where only the egress MTU matters.
//
// IPv6 has the same shapes (tun6.go, packettoobig.go): IP6IP6 tunnels an
// IPv6 packet to an IPv6 real server, and for the mixed-family tunnel dests
// IPVS accepts, IP4IP6 an IPv4 packet to an IPv6 one and IP6IP4 an IPv6
// packet to an IPv4 one, each in place in the headroom as IPIP is. Their
// outer headers take the inner TOS or traffic class and TTL or hop limit, as
// ip_vs_prepare_tunneled_skb does. IPv6 is never fragmented on the way, so
// an IPv6 packet that does not fit is always refused with an ICMPv6 Packet
// Too Big (NeedsPacketTooBig, PacketTooBig), never split.
//
// All functions are pure, allocate nothing, and never panic: a slice too short
// or a Packet that does not describe the frame makes them report failure.
// They take a header.Packet produced by header.Parse on the same frame.
package encap
