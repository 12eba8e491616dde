package encap

import (
	"encoding/binary"

	"github.com/afvs/afvs/internal/header"
)

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

// DRFrom is DR with the addresses passed by pointer, for the per-frame
// path: the 12 address bytes are read from *dstMAC and *srcMAC and written
// with one 8-byte and one 4-byte store. DR's arrays, passed by value, are
// first copied to a stack temporary, and reading them back in words that
// straddle that copy's stores stalls the store buffer.
func DRFrom(frame []byte, dstMAC, srcMAC *[6]byte) bool {
	if len(frame) < header.EthernetLen {
		return false
	}
	lo := uint64(binary.LittleEndian.Uint32(dstMAC[0:4])) |
		uint64(binary.LittleEndian.Uint16(dstMAC[4:6]))<<32 |
		uint64(binary.LittleEndian.Uint16(srcMAC[0:2]))<<48
	binary.LittleEndian.PutUint64(frame[0:8], lo)
	binary.LittleEndian.PutUint32(frame[8:12], binary.LittleEndian.Uint32(srcMAC[2:6]))
	return true
}
