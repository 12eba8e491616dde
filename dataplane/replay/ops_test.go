package replay

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/vs"
)

// TestReplayOnePacket: the replay runs the processor's one-packet path,
// so six datagrams of one client socket to an rr -o service leave for
// the three real servers in the kernel's list order (newest first),
// twice round; without -o all six leave for one.
func TestReplayOnePacket(t *testing.T) {
	rs := []netip.Addr{netip.MustParseAddr("198.18.0.31"), netip.MustParseAddr("198.18.0.32"), netip.MustParseAddr("198.18.0.33")}
	for _, ops := range []bool{true, false} {
		s := vs.Service{Key: vs.Key{Proto: vs.UDP, Addr: netip.AddrFrom4([4]byte(vip)), Port: 53}, Sched: "rr", OnePacket: ops}
		for _, a := range rs {
			s.Reals = append(s.Reals, vs.Real{Addr: a, Port: 53, Fwd: vs.Route, Weight: 1})
		}
		tbl := &vs.Table{}
		if err := tbl.AddService(s); err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		w := pcapgo.NewWriter(&in)
		if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		d := serialize(t, withEth(clientMAC, dirMAC, clientLayers("udp", 40000, false, false, 16))...)
		ts := time.Unix(1700000000, 0)
		for i := range 6 {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(d), Length: len(d)}, d); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		sum, err := Run(tbl, &in, &out, Options{MAC: [6]byte(dirMAC), Addr: netip.AddrFrom4([4]byte(dirAddr)), MTU: 1500})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Forwarded != 6 {
			t.Fatalf("ops=%v: %d forwarded (summary %+v), want 6", ops, sum.Forwarded, sum)
		}
		r, err := pcapgo.NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Addr{rs[2], rs[1], rs[0], rs[2], rs[1], rs[0]}
		if !ops {
			want = []netip.Addr{rs[2], rs[2], rs[2], rs[2], rs[2], rs[2]}
		}
		for i := range want {
			f, _, err := r.ReadPacketData()
			if err != nil {
				t.Fatalf("ops=%v: frame %d: %v", ops, i, err)
			}
			if m := dataplane.SyntheticMAC(want[i]); !bytes.Equal(f[:6], m[:]) {
				t.Errorf("ops=%v: frame %d went to MAC %x, want %v's %x", ops, i, f[:6], want[i], m)
			}
		}
	}
}
