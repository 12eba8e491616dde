package dataplane

import "net/netip"

// StaticResolver is a Resolver for offline use (pcap replay, simulation and
// tests): every real server is on-link behind slot 0, and its MAC comes from
// MACs or, when absent, from SyntheticMAC.
type StaticResolver struct {
	MACs map[netip.Addr][6]byte
}

// Route puts every destination on-link on slot 0.
func (r StaticResolver) Route(dst netip.Addr) (Route, error) {
	return Route{Slot: 0, NextHop: dst}, nil
}

// Neighbor returns the configured MAC or a synthetic one.
func (r StaticResolver) Neighbor(_ int, nh netip.Addr) ([6]byte, bool) {
	if m, ok := r.MACs[nh]; ok {
		return m, m != [6]byte{}
	}
	return SyntheticMAC(nh), true
}

// SyntheticMAC is a locally administered unicast MAC that embeds an IPv4
// address, 02:00:a:b:c:d, so offline output names the server it went to;
// for an IPv6 address it embeds the last four bytes.
func SyntheticMAC(a netip.Addr) [6]byte {
	b := a.As16()
	return [6]byte{0x02, 0x00, b[12], b[13], b[14], b[15]}
}
