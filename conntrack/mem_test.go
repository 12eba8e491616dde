package conntrack

import (
	"bufio"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func heapObjectBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTableOutsideHeap shows where the arrays live: outside the Go heap in
// the normal build (so the collector's pauses and pacing ignore them), on
// it under -race (so the detector watches them).
func TestTableOutsideHeap(t *testing.T) {
	before := heapObjectBytes()
	tbl := newTestTable(t, Config{Capacity: 1 << 20, Templates: 1 << 16, Clock: &ManualClock{}})
	grew := int64(heapObjectBytes()) - int64(before)
	runtime.KeepAlive(tbl)
	if offHeap && grew > 1<<20 {
		t.Fatalf("the Go heap grew by %d bytes for a %d-byte table that should be outside it", grew, tbl.Bytes())
	}
	if !offHeap && grew < int64(tbl.Bytes()) {
		t.Fatalf("race build: the Go heap grew by %d bytes, less than the %d-byte table it should hold", grew, tbl.Bytes())
	}
	if !offHeap {
		return
	}
	p := uintptr(unsafe.Pointer(tbl.conns.bucket(0)))
	if p%hugePageSize != 0 {
		t.Fatalf("slot arrays at %#x, not aligned to %d for huge pages", p, hugePageSize)
	}
	// New faults the arrays in, so no packet pays a page fault later.
	rss, huge := residentKB(t, p)
	if want := uint64(tbl.conns.bytes()) / 1024; rss < want {
		t.Fatalf("%d KiB of the %d KiB mapping are resident after New", rss, want)
	}
	t.Logf("resident %d KiB, of which %d KiB on huge pages", rss, huge)
}

// residentKB returns the Rss and AnonHugePages of the mapping holding addr,
// from /proc/self/smaps.
func residentKB(t *testing.T, addr uintptr) (rss, huge uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				in = uint64(addr) >= a && uint64(addr) < z
				continue
			}
		}
		if !in || len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = v
		case "AnonHugePages:":
			huge = v
		}
	}
	return rss, huge
}

// mapped reports whether addr lies in one of the process's mappings.
func mapped(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lo, hi, ok := strings.Cut(strings.Fields(sc.Text())[0], "-")
		if !ok {
			continue
		}
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		if uint64(addr) >= a && uint64(addr) < b {
			return true
		}
	}
	return false
}

func requireOffHeap(t *testing.T) {
	if !offHeap {
		t.Skip("this build keeps tables on the Go heap (race detector or not Linux)")
	}
}

// TestCloseUnmaps checks Close gives the memory back, is idempotent, and
// turns a later call into a panic rather than a fault.
func TestCloseUnmaps(t *testing.T) {
	requireOffHeap(t)
	tbl, err := New(Config{Capacity: 100_000, Templates: 1000, Clock: &ManualClock{}})
	if err != nil {
		t.Fatal(err)
	}
	conns := uintptr(unsafe.Pointer(tbl.conns.entry(0)))
	tmpls := uintptr(unsafe.Pointer(tbl.tmpls.entry(0)))
	if !mapped(t, conns) || !mapped(t, tmpls) {
		t.Fatal("the table's arrays are not in /proc/self/maps")
	}
	tbl.Close()
	tbl.Close()
	if mapped(t, conns) || mapped(t, tmpls) {
		t.Fatal("Close left the arrays mapped")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Lookup after Close did not panic")
		}
	}()
	k := v4Key(ProtoTCP, 1, 1000, 80)
	tbl.Lookup(&k)
}

// TestForgottenTableIsUnmapped checks the backstop: a table nobody closed
// is unmapped once the collector finds it unreachable.
func TestForgottenTableIsUnmapped(t *testing.T) {
	requireOffHeap(t)
	addr := func() uintptr {
		tbl, err := New(Config{Capacity: 100_000, Clock: &ManualClock{}})
		if err != nil {
			t.Fatal(err)
		}
		k := v4Key(ProtoTCP, 1, 1000, 80)
		tbl.Insert(&k, 1, 0, 0, EvSyn)
		return uintptr(unsafe.Pointer(tbl.conns.entry(0)))
	}()
	for deadline := time.Now().Add(10 * time.Second); mapped(t, addr); {
		if time.Now().After(deadline) {
			t.Fatal("an unreachable table is still mapped after 10 s of GC cycles")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
