package dataplane

import (
	"testing"

	"github.com/afvs/afvs/internal/header"
	ts "github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/vs"
)

// FuzzProcess feeds arbitrary frames to the whole per-frame path, in DR and
// TUN mode with persistence, and requires that nothing panics, that a
// forwarded frame lies inside its buffer, and that every frame is counted
// exactly once as received.
func FuzzProcess(f *testing.F) {
	f.Add(tcpFrame(f, [4]byte{198, 18, 0, 10}, 1000, true, false, false, true, 0), uint8(0))
	f.Add(tcpFrame(f, [4]byte{198, 18, 0, 10}, 1000, false, true, true, false, 1400), uint8(1))
	f.Add([]byte{0x01, 0x02}, uint8(2))
	f.Add(make([]byte, 1514), uint8(3))
	// A full-size SYN without DF to the TUN service: split in two.
	f.Add(tcpFrame(f, [4]byte{198, 18, 0, 11}, 1001, true, false, false, false, 1460), uint8(1))
	rigs := map[vs.Fwd]*rig{}
	for _, fwd := range []vs.Fwd{vs.Route, vs.Tunnel} {
		tbl := oneService(fwd, "wlc", 1, 2)
		tbl.Services[0].Persistent, tbl.Services[0].Timeout = true, 60
		rigs[fwd] = newRig(f, tbl, 1024)
	}
	buf := make([]byte, 2048)
	f.Fuzz(func(t *testing.T, frame []byte, sel uint8) {
		if len(frame) > 2048-headroom {
			frame = frame[:2048-headroom]
		}
		r := rigs[vs.Fwd(sel&1)]
		off := headroom
		if sel&2 != 0 {
			off = int(sel>>2) % (headroom + 1) // little or no headroom too
		}
		if off+len(frame) > len(buf) {
			off = len(buf) - len(frame)
		}
		copy(buf[off:], frame)
		before := r.c.RX.Load()
		v, out := r.p.Process(r.snap, buf, off, len(frame))
		if r.c.RX.Load() != before+1 {
			t.Fatalf("frame counted %d times", r.c.RX.Load()-before)
		}
		if v == VerdictForward && (out.Off < 0 || out.Len <= 0 || out.Off+out.Len > len(buf)) {
			t.Fatalf("forwarded frame at %d+%d outside its %d-byte buffer", out.Off, out.Len, len(buf))
		}
		if v == VerdictReply && len(r.p.Reply()) == 0 {
			t.Fatal("reply verdict without a reply")
		}
		if v == VerdictForward && out.Second && (len(r.p.Second()) == 0 || len(r.p.Second()) > len(frame)) {
			t.Fatalf("second fragment of %d bytes for a %d-byte frame", len(r.p.Second()), len(frame))
		}
	})
}

// l4Valid reports whether the TCP or UDP checksum of the IPv4 packet in
// frame (parsed as pk) is right; a UDP checksum of 0 (none) counts as
// right.
func l4Valid(frame []byte, pk *header.Packet) bool {
	l4 := frame[pk.L4:pk.End]
	if pk.Proto == header.ProtocolUDP && header.UDP(l4).Checksum() == 0 {
		return true
	}
	ps := header.PseudoHeaderChecksum(pk.Proto, [4]byte(frame[pk.L3+12:pk.L3+16]), [4]byte(frame[pk.L3+16:pk.L3+20]), uint16(len(l4)))
	return header.Checksum(l4, ps) == 0xffff
}

// FuzzReply feeds arbitrary frames, ICMP errors among them, to the VS/NAT paths of the fixture
// configuration, most of them made to come from the NAT real server (sel
// bit 0 writes its address and port 8080 over the frame's source) so that
// they reach the reply path and its reverse index, with a few NAT
// connections open. Nothing may panic, every frame counts once, a
// forwarded frame lies inside its buffer, and a rewrite keeps a right
// checksum right: incremental updates never break one.
func FuzzReply(f *testing.F) {
	f.Add(fromRS(f, 8080, ts.SYN|ts.ACK), uint8(1))
	f.Add(fromRS(f, 8080, ts.ACK, fxSport(40001)), uint8(1))
	f.Add(udpFromRS(f, 5353), uint8(1))
	f.Add(seg(f, fxVIPNAT, 80, fxFlags(ts.ACK)), uint8(0))
	f.Add(dgram(f, fxVIPNAT, 53), uint8(0))
	f.Add([]byte{0x01}, uint8(1))
	for _, fx := range natICMPFixtures(f) {
		f.Add(fx.in, uint8(0))
	}
	r := newFxRig(f, 1024, 64)
	for _, fr := range [][]byte{seg(f, fxVIPNAT, 80), seg(f, fxVIPNAT, 80, fxSport(40001)), dgram(f, fxVIPNAT, 53)} {
		if v, _, _ := r.run(fr, 256); v != VerdictForward {
			f.Fatal("setup frame dropped")
		}
	}
	rs := fxRSNAT.As4()
	buf := make([]byte, 2048)
	var in, out header.Packet
	f.Fuzz(func(t *testing.T, frame []byte, sel uint8) {
		if len(frame) > 2048-256 {
			frame = frame[:2048-256]
		}
		fr := append([]byte(nil), frame...)
		if sel&1 != 0 && len(fr) >= 14+20+4 && fr[14]&0x0f == 5 {
			copy(fr[14+12:], rs[:])
			fr[14+20], fr[14+21] = 8080>>8, 8080&0xff
			withIPChecksum(fr)
		}
		pr := header.Parse(fr, &in)
		inOK := pr == header.OK && l4Valid(fr, &in)
		icmpOK := pr == header.UnknownProtocol && in.Proto == header.ProtocolICMP && icmpValid(fr[in.L4:in.End])
		copy(buf[256:], fr)
		before := r.c.RX.Load()
		v, o := r.p.Process(r.snap, buf, 256, len(fr))
		if r.c.RX.Load() != before+1 {
			t.Fatalf("frame counted %d times", r.c.RX.Load()-before)
		}
		if v != VerdictForward {
			return
		}
		if o.Off < 0 || o.Len <= 0 || o.Off+o.Len > len(buf) {
			t.Fatalf("forwarded frame at %d+%d outside its %d-byte buffer", o.Off, o.Len, len(buf))
		}
		res := buf[o.Off : o.Off+o.Len]
		if inOK && !o.Second {
			if rs := header.Parse(res, &out); rs != header.OK || !l4Valid(res, &out) {
				t.Fatalf("a right frame came out wrong (%v): in %x out %x", rs, fr, res)
			}
		}
		if icmpOK {
			if rs := header.Parse(res, &out); rs != header.UnknownProtocol || !icmpValid(res[out.L4:out.End]) {
				t.Fatalf("a right ICMP error came out wrong (%v): in %x out %x", rs, fr, res)
			}
		}
	})
}
