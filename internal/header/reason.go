package header

// Reason is the verdict of Parse: OK, or why the frame is dropped. The values
// index per-queue drop counters, so they are dense and start at zero.
type Reason uint8

// Drop reasons, in the order Parse checks them for IPv4; the ones only IPv6
// has follow. IPv6 reuses the IPv4 reasons where the rule is the same.
const (
	OK                 Reason = iota
	TruncatedEthernet         // shorter than an Ethernet header, or than its 802.1Q tag
	NotIPv4                   // neither IPv4 nor IPv6: ARP, a second VLAN tag or any other ethertype
	TruncatedIP               // fewer bytes than 20 (IPv6: 40), or than the IHL says
	BadVersion                // version nibble is not 4 (IPv6: 6)
	BadIHL                    // IHL below 5
	BadTotalLength            // total length shorter than the header or longer than the frame (IPv6: payload length past the frame)
	BadChecksum               // IPv4 header checksum does not verify
	BadIPOptions              // an IPv4 option's length is below 2 or runs past the header
	MartianSource             // source no host may use: 0/8, 127/8, 224/4, 240/4 (with 255.255.255.255); IPv6: ::1, ff00::/8, ::ffff:0:0/96
	TTLZero                   // time to live (IPv6: hop limit) 0: no router may forward it
	Fragment                  // MF set or fragment offset non-zero
	UnknownProtocol           // neither TCP nor UDP
	TruncatedL4               // IP payload shorter than the TCP, UDP (or ICMPv6) header
	BadTCPOffset              // TCP data offset below 5 or past the IP payload
	BadUDPLength              // UDP length below 8 or past the IP payload
	MartianDestination        // IPv6 destination ::1, ::ffff:0:0/96, or multicast of scope 0 or 1
	BadExtHeader              // IPv6 extension header past the payload, hop-by-hop not first, or a hop-by-hop option Linux drops
	TooManyExtHeaders         // more than MaxIPv6ExtHeaders IPv6 extension headers
	IPv6Fragment              // an IPv6 Fragment header
	UnknownNextHeader         // an IPv6 next header that is neither a walked extension header nor TCP, UDP or ICMPv6
	// Reasons of ParseICMPError, for ICMP messages to a VIP.
	ICMPNotError      // an ICMP type IPVS does not relate to a connection (echo, redirect, parameter problem, ...)
	ICMPTruncated     // shorter than the ICMP header, the quoted IPv4 header and its ports
	ICMPBadChecksum   // the ICMP checksum does not verify
	ICMPBadInner      // the quoted header is not IPv4 with an IHL of at least 5
	ICMPInnerNotL4    // the quoted packet is neither TCP nor UDP
	ICMPInnerFragment // the quoted packet is a non-first fragment: it has no ports
	numReasons
)

// NumReasons is the number of Reason values, for sizing counter arrays.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{
	OK:                 "ok",
	TruncatedEthernet:  "truncated_ethernet",
	NotIPv4:            "not_ipv4",
	TruncatedIP:        "truncated_ip",
	BadVersion:         "bad_version",
	BadIHL:             "bad_ihl",
	BadTotalLength:     "bad_total_length",
	BadChecksum:        "bad_checksum",
	BadIPOptions:       "bad_ip_options",
	MartianSource:      "martian_source",
	TTLZero:            "ttl_zero",
	Fragment:           "fragment",
	UnknownProtocol:    "unknown_protocol",
	TruncatedL4:        "truncated_l4",
	BadTCPOffset:       "bad_tcp_offset",
	BadUDPLength:       "bad_udp_length",
	MartianDestination: "martian_destination",
	BadExtHeader:       "bad_ext_header",
	TooManyExtHeaders:  "too_many_ext_headers",
	IPv6Fragment:       "ipv6_fragment",
	UnknownNextHeader:  "unknown_next_header",
	ICMPNotError:       "icmp_not_error",
	ICMPTruncated:      "icmp_truncated",
	ICMPBadChecksum:    "icmp_bad_checksum",
	ICMPBadInner:       "icmp_bad_inner",
	ICMPInnerNotL4:     "icmp_inner_not_l4",
	ICMPInnerFragment:  "icmp_inner_fragment",
}

// String returns the stable snake_case name used as a metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown_reason"
}
