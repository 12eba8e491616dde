package xdpprog

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
)

// runXDP runs prog once on in with BPF_PROG_TEST_RUN and returns the
// verdict and the frame as the program left it.
func runXDP(t testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	t.Helper()
	opts := ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("test run on %d-byte frame: %v", len(in), err)
	}
	return ret, opts.DataOut
}

func verdictName(v uint32) string {
	switch v {
	case 0:
		return "XDP_ABORTED"
	case xdpDrop:
		return "XDP_DROP"
	case xdpPass:
		return "XDP_PASS"
	case 3:
		return "XDP_TX"
	case xdpRedirect:
		return "XDP_REDIRECT"
	}
	return "unknown"
}

func checkVerdict(t testing.TB, got, want uint32) {
	t.Helper()
	if got != want {
		t.Errorf("verdict %s (%d), want %s (%d)", verdictName(got), got, verdictName(want), want)
	}
}

func checkBytes(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("output frame differs:\n got %x\nwant %x", got, want)
	}
}
