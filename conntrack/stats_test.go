package conntrack

import (
	"testing"
	"unsafe"
)

// TestStatStripesApart: the counters of two stripes lie at least a cache
// line apart wherever the Table lands, so queues counting into different
// stripes never write one line.
func TestStatStripesApart(t *testing.T) {
	var s stats
	data := unsafe.Offsetof(s[0].reopened) + unsafe.Sizeof(s[0].reopened)
	gap := uintptr(unsafe.Pointer(&s[1])) - uintptr(unsafe.Pointer(&s[0])) - data
	if gap < 64 {
		t.Fatalf("stripes %d bytes apart, want at least 64", gap)
	}
}
