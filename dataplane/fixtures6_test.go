package dataplane

import (
	"net/netip"
	"testing"

	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/google/gopacket/layers"
)

// IPv6 frames of the fixture table, whose IPv6 VIP fxVIP6 has no service
// (the IPv6 services are forward6_test.go's): an IPv6 frame to it that
// parses finds no service, and one that does not is counted under its parse
// reason like any other.
var (
	fxClient6 = netip.MustParseAddr("2001:2::10")
	fxVIP6    = netip.MustParseAddr("2001:2:0:1::1")
)

// seg6 is a TCP SYN from fxClient6 to dst:port whose next header chain is
// the fixed header's next header followed by exts, each an extension header
// type and its bytes after the next-header and length bytes (6, 14, ...).
func seg6(t testing.TB, src, dst netip.Addr, port uint16, exts ...ext6) []byte {
	t.Helper()
	b := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC),
		&layers.IPv6{HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()},
		ts.TCP(40000, port, ts.SYN), ts.Payload(10))
	if len(exts) == 0 {
		return b
	}
	next := b[14+6]
	var chain []byte
	for i := len(exts) - 1; i >= 0; i-- {
		h := append([]byte{next, byte((len(exts[i].body)+2)/8 - 1)}, exts[i].body...)
		chain = append(h, chain...)
		next = exts[i].typ
	}
	b[14+6] = next
	out := append(append(append([]byte(nil), b[:54]...), chain...), b[54:]...)
	pl := len(out) - 54
	out[18], out[19] = byte(pl>>8), byte(pl)
	return out
}

type ext6 struct {
	typ  uint8
	body []byte
}

var fxPad6 = []byte{1, 4, 0, 0, 0, 0} // a PadN option filling a 6-byte body
