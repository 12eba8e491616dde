package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/vs"
)

// TestSyncHookFollowsNeeded: under many sync sysctls, for TCP and UDP
// flows with random segments and random gaps between them, the hook
// queues a connection at exactly the packets where ipvssync.Needed,
// asked at every packet with the connection's count, state and end time
// as ip_vs_sync_conn asks ip_vs_sync_conn_needed, says yes. The
// count-only shortcut (conntrack.SyncCount) must never change a
// decision.
func TestSyncHookFollowsNeeded(t *testing.T) {
	for _, set := range []ipvssync.Settings{
		ipvssync.DefaultSettings,
		{Threshold: 1, Period: 2},
		{Threshold: 0, Period: 7},
		{Threshold: 6, Period: 7},
		{Threshold: 3, Period: 0},
		{Threshold: 9, Period: 4}, // a threshold the count modulo 4 never reaches
		{Threshold: -1, Period: 5},
		{Threshold: 3, Period: 50, RefreshPeriod: 20 * ipvssync.HZ, Retries: 2},
		{Threshold: 0, Period: 0, RefreshPeriod: 2 * ipvssync.HZ, Retries: 1},
		{Threshold: 2, Period: 5, PersistMode: true},
	} {
		for _, proto := range []vs.Proto{vs.TCP, vs.UDP} {
			for seed := range uint64(3) {
				syncFollowsNeeded(t, set, proto, seed)
			}
		}
	}
}

func syncFollowsNeeded(t *testing.T, set ipvssync.Settings, proto vs.Proto, seed uint64) {
	t.Helper()
	tbl := &vs.Table{}
	if err := tbl.AddService(vs.Service{Key: vs.Key{Proto: proto, Addr: vip, Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Fwd: vs.Route, Weight: 1}}}); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, tbl, 1024)
	r.sloppy(t, true) // so that a flow may start with any segment
	q := r.syncOn(t, set)
	rng := rand.New(rand.NewPCG(seed, uint64(proto)))
	k := conntrack.Key{CAddr: fxClient.As16(), VAddr: vip.As16(), CPort: 40000, VPort: 80, Proto: uint8(proto)}
	// The model: the connection's in_pkts, old_state and sync_endtime.
	var pkts uint32
	var st ipvssync.SyncState
	flagsOf := []testsupport.TCPFlags{testsupport.SYN, testsupport.ACK, testsupport.ACK, testsupport.ACK,
		testsupport.ACK, testsupport.ACK, testsupport.ACK | testsupport.FIN, testsupport.RST}
	for i := range 600 {
		r.clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		var f []byte
		if proto == vs.TCP {
			fl := flagsOf[rng.IntN(len(flagsOf))]
			if i == 0 {
				fl = testsupport.SYN
			}
			f = seg(t, vip, 80, fxFlags(fl))
		} else {
			f = dgram(t, vip, 80)
		}
		v, _ := r.sendFrame(t, f)
		r.p.Flush()
		sent := len(drain(q)) > 0
		if v != VerdictForward {
			if sent {
				t.Fatalf("%+v %v seed %d packet %d: dropped (%d) but queued", set, proto, seed, i, v)
			}
			continue
		}
		now := ipvssync.Ticks(r.ct.NowMillis())
		if r.p.Last.New {
			pkts, st = 0, ipvssync.SyncState{EndTime: now &^ 3}
		}
		c, ok := r.ct.Lookup(&k)
		if !ok {
			t.Fatalf("%+v %v seed %d packet %d: no entry after forwarding", set, proto, seed, i)
		}
		pkts = nextPkts(pkts, set.Period)
		to := r.ct.Timeout(c.State)
		ci := ipvssync.ConnInfo{Protocol: uint8(proto), State: ipvsState(c.State), Timeout: ipvssync.Ticks(to / time.Millisecond)}
		want := ipvssync.Needed(&set, &ci, &st, int(pkts), now)
		if sent != want {
			t.Fatalf("%+v %v seed %d packet %d (count %d, state %v): queued %v, ipvssync.Needed says %v",
				set, proto, seed, i, pkts, c.State, sent, want)
		}
	}
}
