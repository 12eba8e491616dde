package dataplane

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// FuzzICMPv6Error sends an ICMPv6 message with an arbitrary type, code
// and body (the quoted packet) from a router to an IPv6 VIP that has
// connections, its checksum made right so the parser reaches the quote.
// Nothing may panic; the frame is counted once, as forwarded (then
// unchanged behind the real server's MAC, or tunnelled) or under exactly
// one drop or parse reason.
func FuzzICMPv6Error(f *testing.F) {
	f.Add(uint8(2), uint8(0), icmp6About(f, fxVIP6DR, 80)[14+40+4:])
	f.Add(uint8(1), uint8(4), icmp6About(f, fxVIP6DR, 53, i6Quoting(layers.IPProtocolUDP), i6Exts(ext6{60, fxPad6}, fragExt6(0)))[14+40+4:])
	f.Add(uint8(3), uint8(0), icmp6About(f, fxVIP6TUN, 80)[14+40+4:])
	f.Add(uint8(135), uint8(0), []byte{0, 0, 0, 0})
	r := newFxRig6(f, 1024, 64)
	sendFirst(frame6(f, fxVIP6DR, 80), frame6(f, fxVIP6DR, 53, f6UDP), frame6(f, fxVIP6TUN, 80))(f, r)
	buf := make([]byte, maxFrame)
	f.Fuzz(func(t *testing.T, typ, code uint8, body []byte) {
		if len(body) > 1400 {
			body = body[:1400]
		}
		frame := ts.Build(t, ts.Eth(fxClientMAC, fxDirMAC), &layers.IPv6{HopLimit: 64, SrcIP: fxRouter6.AsSlice(), DstIP: fxVIP6DR.AsSlice(), NextHeader: layers.IPProtocolICMPv6},
			ts.RawPayload(append([]byte{typ, code, 0, 0}, body...)))
		msg := header.ICMPv6(frame[14+40:])
		msg.SetChecksum(msg.CalculateChecksum(fxRouter6.As16(), fxVIP6DR.As16()))
		var before, after Totals
		before.Add(r.c)
		copy(buf[256:], frame)
		v, out := r.p.Process(r.snap, buf, 256, len(frame))
		r.p.Flush()
		after.Add(r.c)
		var counted uint64
		for d := range NumDrops {
			counted += after.Drops[d] - before.Drops[d]
		}
		for rs := range header.NumReasons {
			counted += after.Parse[rs] - before.Parse[rs]
		}
		fwd := after.ICMPForwarded - before.ICMPForwarded
		switch v {
		case VerdictForward:
			if fwd != 1 || counted != 0 {
				t.Fatalf("forwarded: icmp forwarded %d, drops %d", fwd, counted)
			}
			if out.Off < 0 || out.Off+out.Len > len(buf) {
				t.Fatalf("forwarded frame at %d+%d outside its buffer", out.Off, out.Len)
			}
			got := buf[out.Off : out.Off+out.Len]
			// Unchanged but for the hop limit, one less (decrement_ttl).
			if !bytes.HasSuffix(got, afterHop(frame)) || binary.BigEndian.Uint16(got[12:]) != 0x86dd {
				t.Fatalf("the message changed on its way: %x", got)
			}
		case VerdictDrop:
			if fwd != 0 || counted != 1 {
				t.Fatalf("dropped: icmp forwarded %d, counted under %d reasons", fwd, counted)
			}
		default:
			t.Fatalf("verdict %d for an ICMPv6 message", v)
		}
	})
}
