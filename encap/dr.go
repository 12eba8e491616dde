package encap

import "github.com/afvs/afvs/internal/header"

// DR rewrites frame for direct routing: the destination MAC becomes dstMAC (the
// real server, or the gateway towards it) and the source MAC becomes srcMAC
// (the egress interface). Nothing else changes, so no checksum needs updating.
// It reports false, leaving frame untouched, if frame is shorter than an
// Ethernet header.
func DR(frame []byte, dstMAC, srcMAC [6]byte) bool {
	if len(frame) < header.EthernetLen {
		return false
	}
	eth := header.Ethernet(frame)
	eth.SetDstMAC(dstMAC)
	eth.SetSrcMAC(srcMAC)
	return true
}
