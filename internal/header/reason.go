package header

// Reason is the verdict of Parse: OK, or why the frame is dropped. The values
// index per-queue drop counters, so they are dense and start at zero.
type Reason uint8

// Drop reasons, in the order Parse checks them.
const (
	OK                Reason = iota
	TruncatedEthernet        // shorter than an Ethernet header, or than its 802.1Q tag
	NotIPv4                  // ARP, IPv6, a second VLAN tag or any other ethertype
	TruncatedIP              // fewer bytes than 20, or than the IHL says
	BadVersion               // version nibble is not 4
	BadIHL                   // IHL below 5
	BadTotalLength           // total length shorter than the header or longer than the frame
	BadChecksum              // IPv4 header checksum does not verify
	BadIPOptions             // an IPv4 option's length is below 2 or runs past the header
	MartianSource            // source no host may use: 0/8, 127/8, 224/4, 240/4 (with 255.255.255.255)
	TTLZero                  // time to live 0: no router may forward it
	Fragment                 // MF set or fragment offset non-zero
	UnknownProtocol          // neither TCP nor UDP
	TruncatedL4              // IP payload shorter than the TCP or UDP header
	BadTCPOffset             // TCP data offset below 5 or past the IP payload
	BadUDPLength             // UDP length below 8 or past the IP payload
	numReasons
)

// NumReasons is the number of Reason values, for sizing counter arrays.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{
	OK:                "ok",
	TruncatedEthernet: "truncated_ethernet",
	NotIPv4:           "not_ipv4",
	TruncatedIP:       "truncated_ip",
	BadVersion:        "bad_version",
	BadIHL:            "bad_ihl",
	BadTotalLength:    "bad_total_length",
	BadChecksum:       "bad_checksum",
	BadIPOptions:      "bad_ip_options",
	MartianSource:     "martian_source",
	TTLZero:           "ttl_zero",
	Fragment:          "fragment",
	UnknownProtocol:   "unknown_protocol",
	TruncatedL4:       "truncated_l4",
	BadTCPOffset:      "bad_tcp_offset",
	BadUDPLength:      "bad_udp_length",
}

// String returns the stable snake_case name used as a metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown_reason"
}
