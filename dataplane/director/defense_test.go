package director_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/platformtest"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/vs"
)

// TestDirectorDefense: the housekeeping runs IPVS's defence work once a
// second, so an automatic defence turns on when the table fills past
// amemthresh (here: always, the threshold is above the capacity) and
// drop_entry clears half-open entries; and the workers apply the SYN
// limits, which SetSYNLimits changes at run time.
func TestDirectorDefense(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d := l.start([]string{"eth0"}, table(t, service("rr", vs.Route, "198.18.0.11")))
	resolved(t, d)
	if err := d.SetSYNLimits(dataplane.SYNLimits{PerSource: 1, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.client.Send(syn(t, dirMAC, vip, uint16(1000+i)))
	}
	l.collect(3)
	if !platformtest.Eventually(2*time.Second, func() bool {
		var n uint64
		for _, c := range d.Counters() {
			n += c.SYNDrops[dataplane.DropSYNRateSource].Load()
		}
		return n == 7
	}) {
		t.Fatal("7 SYNs over the source's burst of 3 not counted as syn_rate_source")
	}
	if err := d.SetSYNLimits(dataplane.SYNLimits{PerSource: -1}); err == nil {
		t.Fatal("a negative rate was accepted")
	}
	if got := d.SYNLimits(); got != (dataplane.SYNLimits{PerSource: 1, Burst: 3}) {
		t.Fatalf("a refused SetSYNLimits changed the limits to %+v", got)
	}
	// Automatic drop_entry, with amemthresh just at the free entries:
	// no pressure yet. One more connection makes some, and the
	// housekeeping's next defence work turns drop_entry on.
	if err := d.SetSYNLimits(dataplane.SYNLimits{}); err != nil {
		t.Fatal(err)
	}
	free := int(d.CT.Stats().Capacity - d.CT.Stats().Entries)
	if err := d.CT.SetDefense(conntrack.Defense{DropEntry: 1, AmemThresh: free}); err != nil {
		t.Fatal(err)
	}
	if st := d.CT.Defense(); st.DropEntry != 1 || st.DropEntryOn {
		t.Fatalf("free entries at the threshold: %+v", st)
	}
	l.client.Send(syn(t, dirMAC, vip, 2000))
	l.collect(1)
	if !platformtest.Eventually(5*time.Second, func() bool { st := d.CT.Defense(); return st.DropEntry == 2 && st.DropEntryOn }) {
		t.Fatalf("one entry under the threshold: the housekeeping did not turn drop_entry on: %+v", d.CT.Defense())
	}
}

// TestDirectorBlocklist: a source far over its SYN rate is put in the
// steering program's blocklist, whose drops then keep its frames from
// the workers.
func TestDirectorBlocklist(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 4096, Templates: 1024, Frames: 512,
		SYN: dataplane.SYNLimits{PerSource: 1, Burst: 2, BlockFactor: 3}, BlockFor: time.Minute,
		Platform: l.dir, Log: slog.New(slog.NewTextHandler(l.log, nil))}, table(t, service("rr", vs.Route, "198.18.0.11")))
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(d.Close)
	resolved(t, d)
	for i := range 20 {
		l.client.Send(syn(t, dirMAC, vip, uint16(1000+i)))
	}
	if !platformtest.Eventually(10*time.Second, func() bool { return d.Blocks() == 1 }) {
		t.Fatalf("%d blocks, want the one source blocked once", d.Blocks())
	}
	// The writer runs beside the workers: wait until it has written,
	// then everything from the source stops in the steering program.
	if !platformtest.Eventually(10*time.Second, func() bool {
		l.client.Send(syn(t, dirMAC, vip, 3000))
		st, _ := d.Steering()
		return st.Blocked > 0
	}) {
		t.Fatal("the blocked source's SYNs still reach the workers")
	}
	// Frames redirected before the block may still wait in a socket's
	// ring for a worker: the counts agree once the workers have read
	// them, and nothing more is redirected meanwhile.
	var st xdpprog.StatsCounters
	var rx uint64
	if !platformtest.Eventually(10*time.Second, func() bool {
		st, _ = d.Steering()
		rx = 0
		for _, c := range d.Counters() {
			rx += c.RX.Load()
		}
		return st.Redirected == rx
	}) || st.Total != st.Redirected+st.Blocked+st.Passed() {
		t.Fatalf("steering %+v, workers received %d", st, rx)
	}
	// The writer logs the block after writing it.
	if !platformtest.Eventually(10*time.Second, func() bool { return strings.Contains(l.log.String(), "source blocked in XDP") }) {
		t.Fatalf("no log line for the block:\n%s", l.log.String())
	}
}

// TestDirectorRingSizes: the RX and fill ring sizes reach the sockets,
// and a size the kernel would refuse fails New naming it.
func TestDirectorRingSizes(t *testing.T) {
	l := newLab(t, false, "198.18.0.11")
	d, err := director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 64, Templates: 16, Frames: 1024,
		RxRing: 512, FillRing: 256, Platform: l.dir, Log: slog.New(slog.DiscardHandler)}, table(t))
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	opts := l.dir.SocketOptions()
	if len(opts) != 1 || opts[0].RxSize != 512 || opts[0].FillSize != 256 || opts[0].NumFrames != 1024 {
		t.Fatalf("socket options %+v, want rx 512, fill 256, 1024 frames", opts)
	}
	_, err = director.New(director.Options{Interfaces: []string{"eth0"}, Capacity: 64, Templates: 16, Frames: 1024,
		RxRing: 100, Platform: l.dir, Log: slog.New(slog.DiscardHandler)}, table(t))
	if err == nil || !strings.Contains(err.Error(), "rx size 100") {
		t.Fatalf("rx ring 100: %v, want an error naming it", err)
	}
}
