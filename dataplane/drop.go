package dataplane

// Drop is why the processor dropped a frame after it parsed. Parse errors are
// counted separately, by header.Reason.
type Drop uint8

const (
	DropNoService          Drop = iota // no virtual service for dst addr/proto/port (table changed under the steering map)
	DropNoConnection                   // TCP without SYN (without sloppy_tcp) or a RST, and no connection entry (IPVS ignores these)
	DropNoDest                         // the scheduler found no available real server
	DropDestUnavailable                // the connection's real server was deleted (IPVS drops and lets it expire)
	DropTableFull                      // connection table full even after eviction
	DropTemplateFull                   // persistence template table full
	DropNeighborUnresolved             // next hop MAC not known yet: never sent to a zero MAC
	DropNoEgress                       // real server's egress interface has no socket
	DropFragNeeded                     // DF set (always, for IPv6) and the packet (tunnelled or not) exceeds the egress MTU (ICMP fragmentation-needed or ICMPv6 Packet Too Big sent)
	DropTooBig                         // no DF and over the egress MTU, but two fragments cannot carry it (or it has IP options, or it needs an IPv6 tunnel); or an IPv6 tunnel's MTU is below 1280
	DropNoHeadroom                     // encapsulation could not fit in the frame's chunk
	DropTxRingFull                     // TX ring full
	DropNoFreeFrame                    // no free frame for a copy to another interface or an ICMP reply
	DropUnsupportedFwd                 // forwarding method this dataplane does not implement
	DropBadDescriptor                  // an RX descriptor outside its UMEM chunk
	DropICMPLimited                    // DF set and too big, as DropFragNeeded, but the ICMP rate limit held the reply back
	DropLocalDeliver                   // the director's own stack did not take a local-node packet
	DropICMPUnmatched                  // an ICMP error quoting a virtual service's packet of no known connection
	DropICMPForwardLimited             // an ICMP error for a real server held back by the forwarding rate limit
	DropFragHoldFull                   // a later fragment came before its first and every hold slot was taken
	DropFragTimeout                    // a held fragment whose first fragment did not come in time
	DropReplyNoConnection              // a frame from a VS/NAT real server that belongs to no connection
	DropSYNRateSource                  // a new TCP connection over its client address's SYN rate (defense.syn_rate_per_source)
	DropSYNRateService                 // a new TCP connection over its service's SYN rate (defense.syn_rate_per_service)
	DropDefensePacket                  // a new connection dropped by IPVS's drop_packet defence (ipvs.drop_packet)
	DropSYNProxyBadCookie              // an ACK to a SYN-proxied service that acknowledges no cookie the director made
	DropSYNProxyExpired                // an ACK to a SYN-proxied service whose cookie is older than its validity
	DropSYNProxyPending                // a SYN or RST from the client, or a packet but a SYN-ACK or RST from the server, of a SYN-proxied connection whose server has not answered yet
	DropSYNProxyNotNAT                 // a SYN-proxied connection scheduled to a real server that is not VS/NAT
	DropICMPTunnelNoDF                 // a fragmentation-needed about a VS/TUN packet whose client did not set DF (IPVS answers nothing)
	DropTTLExceeded                    // TTL (IPv6: hop limit) 1 or less on a packet to forward: ICMP Time Exceeded sent unless icmp_send would not answer it (an ICMP error, a later fragment)
	DropTTLExceededLimited             // as DropTTLExceeded, but the ICMP rate limit held the Time Exceeded back
	numDrops
)

// NumDrops is the number of Drop values.
const NumDrops = int(numDrops)

var dropNames = [numDrops]string{
	DropNoService:          "no_service",
	DropNoConnection:       "no_connection",
	DropNoDest:             "no_dest",
	DropDestUnavailable:    "dest_unavailable",
	DropTableFull:          "table_full",
	DropTemplateFull:       "template_full",
	DropNeighborUnresolved: "neighbor_unresolved",
	DropNoEgress:           "no_egress",
	DropFragNeeded:         "frag_needed",
	DropTooBig:             "too_big",
	DropNoHeadroom:         "no_headroom",
	DropTxRingFull:         "tx_ring_full",
	DropNoFreeFrame:        "no_free_frame",
	DropUnsupportedFwd:     "unsupported_forwarding",
	DropBadDescriptor:      "bad_descriptor",
	DropICMPLimited:        "frag_needed_limited",
	DropLocalDeliver:       "local_deliver",
	DropICMPUnmatched:      "icmp_unmatched",
	DropICMPForwardLimited: "icmp_forward_limited",
	DropFragHoldFull:       "fragment_hold_full",
	DropFragTimeout:        "fragment_timeout",
	DropReplyNoConnection:  "reply_no_connection",
	DropSYNRateSource:      "syn_rate_source",
	DropSYNRateService:     "syn_rate_service",
	DropDefensePacket:      "drop_packet",
	DropSYNProxyBadCookie:  "synproxy_bad_cookie",
	DropSYNProxyExpired:    "synproxy_cookie_expired",
	DropSYNProxyPending:    "synproxy_pending",
	DropSYNProxyNotNAT:     "synproxy_not_nat",
	DropICMPTunnelNoDF:     "icmp_tunnel_no_df",
	DropTTLExceeded:        "ttl_exceeded",
	DropTTLExceededLimited: "ttl_exceeded_limited",
}

// String returns the stable metric label.
func (d Drop) String() string {
	if d < numDrops {
		return dropNames[d]
	}
	return "unknown"
}
