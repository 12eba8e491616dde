package xdpprog

import (
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
)

func TestDropSinkCounts(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d, err := LoadDropSink()
	if err != nil {
		t.Fatalf("LoadDropSink: %v", err)
	}
	defer d.Close()
	frames := [][]byte{
		buildFrame(t, frameSpec{dstPort: 80}),
		arpFrame(t),
		ipv6Frame(t),
		buildFrame(t, frameSpec{payload: make([]byte, 1000)})[:ethLen], // a bare Ethernet header
	}
	var wantBytes uint64
	for _, f := range frames {
		verdict, out := runXDP(t, d.program(), f)
		checkVerdict(t, verdict, xdpDrop)
		checkBytes(t, out, f)
		wantBytes += uint64(len(f))
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if want := (DropSinkStats{Packets: uint64(len(frames)), Bytes: wantBytes}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}
