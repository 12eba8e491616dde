package dataplane

import (
	"testing"

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
