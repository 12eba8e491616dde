package director

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// recSteering records the blocks the blocklist writer asks for.
type recSteering struct {
	Steering // only Block is called
	mu       sync.Mutex
	blocks   []netip.Addr
}

func (r *recSteering) Block(src netip.Addr, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocks = append(r.blocks, src)
	return nil
}

func (r *recSteering) got() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]netip.Addr(nil), r.blocks...)
}

// TestBlocklistBothFamilies: the workers' reports of sources far over
// their SYN rate reach the steering programs for both families. An IPv6
// source is blocked by its prefix of Options.BlockPrefix6 bits, once per
// half block time for the whole prefix, however many of its addresses
// are reported; the log names the prefix.
func TestBlocklistBothFamilies(t *testing.T) {
	var logBuf bytes.Buffer
	var logMu sync.Mutex
	st := &recSteering{}
	d := &Director{opt: Options{BlockFor: time.Minute, BlockPrefix6: 48}, steer: []Steering{st},
		block: &blocker{ch: make(chan [16]byte, blockQueue)}, stop: make(chan struct{}),
		log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &logMu}, nil))}
	d.wg.Add(1)
	go d.runBlocklist()
	a := netip.MustParseAddr
	for _, src := range []string{"2001:2:0:7::10", "2001:2:0:9::99", "198.18.0.10", "2001:2:1::1"} {
		d.block.Block(a(src).As16())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(st.got()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(d.stop)
	d.wg.Wait()
	want := []netip.Addr{a("2001:2::"), a("198.18.0.10"), a("2001:2:1::")}
	if got := st.got(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("blocks %v, want %v (the second /48 address deduplicated)", got, want)
	}
	if d.Blocks() != 3 {
		t.Fatalf("%d blocks counted, want 3", d.Blocks())
	}
	logMu.Lock()
	defer logMu.Unlock()
	if log := logBuf.String(); !strings.Contains(log, "blocked=2001:2::/48") || !strings.Contains(log, "source=2001:2:0:7::10") ||
		!strings.Contains(log, "blocked=198.18.0.10/32") {
		t.Fatalf("log does not name the blocked prefixes:\n%s", log)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
