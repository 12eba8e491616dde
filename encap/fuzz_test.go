package encap

import (
	"bytes"
	"testing"

	"github.com/afvs/afvs/internal/header"
)

// FuzzIPIP feeds arbitrary frames, offsets and buffer sizes to IPIP and
// FragNeeded, with the Packet either from Parse or with fields the fuzzer
// chooses. They must never panic; a refusal must leave buf alone; an accepted
// encapsulation must carry the original IP packet unchanged behind a valid
// outer header.
func FuzzIPIP(f *testing.F) {
	f.Add(build(f, spec{payload: 10, df: true}), uint8(40), uint8(0), false, 0, 0, uint16(0))
	f.Add(build(f, spec{vlan: true, udp: true}), uint8(3), uint8(30), false, 0, 0, uint16(0))
	f.Add(build(f, spec{}), uint8(20), uint8(20), true, 14, 40, uint16(26))
	f.Fuzz(func(t *testing.T, frame []byte, off, tail uint8, forge bool, l3, end int, total uint16) {
		var p header.Packet
		parsed := header.Parse(frame, &p) == header.OK
		if forge {
			p.L3, p.End, p.TotalLen, p.L4 = l3, end, total, l3+20
		} else if !parsed {
			return
		}
		buf := make([]byte, int(off)+len(frame)+int(tail))
		copy(buf[off:], frame)
		before := bytes.Clone(buf)
		newOff, newN, ok := IPIP(buf, int(off), len(frame), &p, directorIP, rsIP, egressMAC, rsMAC)
		switch {
		case !ok && !bytes.Equal(buf, before):
			t.Fatal("refused but wrote to buf")
		case ok:
			out := buf[newOff : newOff+newN]
			outer := header.IPv4(out[p.L3:])
			if !outer.IsChecksumValid() || outer.Protocol() != header.ProtocolIPIP || int(outer.TotalLength()) != newN-p.L3 {
				t.Fatalf("bad outer header % x", out[p.L3:p.L3+20])
			}
			if !bytes.Equal(out[p.L3+20:], frame[p.L3:p.End]) {
				t.Fatal("inner packet changed")
			}
		}
		out := make([]byte, int(tail)+14)
		if n := FragNeeded(out, frame, &p, int(off)*20, 1500, directorMAC, clientMAC, vip); n > len(out) {
			t.Fatalf("FragNeeded returned %d for a %d-byte out", n, len(out))
		}
		NeedsFrag(&p, int(off)*20)

		// FragmentIPIP on the same input, at an MTU the fuzzer picks: a
		// refusal leaves buf alone; the two fragments, reassembled, are the
		// original payload.
		buf = bytes.Clone(before)
		second := make([]byte, int(tail)*8)
		mtu := 68 + int(off)*6
		if fo, fn, n2, ok := FragmentIPIP(buf, int(off), len(frame), &p, mtu, directorIP, rsIP, egressMAC, rsMAC, second); !ok {
			if !bytes.Equal(buf, before) {
				t.Fatal("fragmentation refused but wrote to buf")
			}
		} else {
			f1 := header.IPv4(buf[fo+p.L3+20 : fo+fn])
			f2 := header.IPv4(second[p.L3+20 : n2])
			if !f1.IsChecksumValid() || !f2.IsChecksumValid() || !f1.MF() || f2.MF() || f2.FragmentOffset() != len(f1.Payload()) {
				t.Fatalf("bad fragments: % x / % x", f1[:20], f2[:20])
			}
			if fn-p.L3 > mtu || n2-p.L3 > mtu {
				t.Fatalf("fragments of %d and %d bytes over MTU %d", fn-p.L3, n2-p.L3, mtu)
			}
			if got := append(bytes.Clone(f1.Payload()), f2.Payload()...); !bytes.Equal(got, frame[p.L3+20:p.End]) {
				t.Fatal("reassembled payload differs")
			}
		}

		// FragmentDR on the same input: the same promises, no tunnel.
		buf = bytes.Clone(before)
		dn1, dn2, ok := FragmentDR(buf, int(off), len(frame), &p, mtu, egressMAC, rsMAC, second)
		if !ok {
			if !bytes.Equal(buf, before) {
				t.Fatal("DR fragmentation refused but wrote to buf")
			}
			return
		}
		d1 := header.IPv4(buf[int(off)+p.L3 : int(off)+dn1])
		d2 := header.IPv4(second[p.L3:dn2])
		if got := append(bytes.Clone(d1.Payload()), d2.Payload()...); !bytes.Equal(got, frame[p.L3+20:p.End]) || dn1-p.L3 > mtu || dn2-p.L3 > mtu {
			t.Fatal("DR fragments do not reassemble into the packet within the MTU")
		}
	})
}
