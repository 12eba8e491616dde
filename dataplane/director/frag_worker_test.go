package director

import (
	"encoding/binary"
	"testing"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/vs"
)

// fragmentsOf cuts the IPv4 packet of an untagged frame into fragments of
// at most size payload bytes (a multiple of 8).
func fragmentsOf(frame []byte, size int) [][]byte {
	payload := frame[14+20 : 14+int(binary.BigEndian.Uint16(frame[16:]))]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := append(append([]byte(nil), frame[:14+20]...), payload[off:end]...)
		ip := header.IPv4(f[14:])
		ip.SetTotalLength(uint16(20 + end - off))
		ff := uint16(off / 8)
		if end < len(payload) {
			ff |= header.IPv4FlagMF
		}
		ip.SetFlagsFragment(ff)
		ip.SetChecksum(0)
		ip.SetChecksum(ip.CalculateChecksum())
		out = append(out, f)
	}
	return out
}

// TestWorkerSendsHeldFragmentsAfterTheFirst: later fragments that arrive
// before their first are held; when the first comes, the worker sends it
// and then the held ones, in copies of its own, and every frame of the
// socket ends up free again.
func TestWorkerSendsHeldFragmentsAfterTheFirst(t *testing.T) {
	for _, fwd := range []vs.Fwd{vs.Route, vs.Tunnel} {
		t.Run(fwd.String(), func(t *testing.T) {
			w, ps, r := newTestWorker(t, fwd, 1)
			p := ps[0]
			p.Record = true
			fs := fragmentsOf(tcpFrame(t, [4]byte{198, 18, 0, 10}, 5000, true, false, false, false, 3000), 1480)
			p.Deliver(fs[2])
			p.Deliver(fs[1])
			for w.Poll() > 0 {
			}
			p.Complete()
			if got := len(p.Recorded()); got != 0 {
				t.Fatalf("%d frames sent before the first fragment", got)
			}
			p.Deliver(fs[0])
			for w.Poll() > 0 {
			}
			p.Complete()
			var offsets []int
			for _, s := range p.Recorded() {
				ip := header.IPv4(s.Frame[14:])
				if fwd == vs.Tunnel {
					ip = header.IPv4(s.Frame[14+20:])
				}
				offsets = append(offsets, ip.FragmentOffset())
			}
			// DR: the first, then the held in their order. TUN: full-size
			// fragments leave as two pieces each, the first with what fits
			// under the MTU after both headers (1456 bytes) and the rest.
			want := []int{0, 2960, 1480}
			if fwd == vs.Tunnel {
				want = []int{0, 1456, 2960, 1480, 2936}
			}
			if len(offsets) != len(want) {
				t.Fatalf("fragment offsets sent %v, want %v", offsets, want)
			}
			for i := range want {
				if offsets[i] != want[i] {
					t.Fatalf("fragment offsets sent %v, want %v", offsets, want)
				}
			}
			if r.c.TX.Load() != uint64(len(want)) {
				t.Fatalf("tx %d, want %d", r.c.TX.Load(), len(want))
			}
			if p.Free() != 256 {
				t.Fatalf("%d of 256 frames free after the fragments went out", p.Free())
			}
		})
	}
}
