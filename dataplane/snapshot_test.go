package dataplane

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestSnapshotDestFindsEveryDest builds a snapshot of several services
// with several real servers each, the same addresses in more than one
// service, and requires dest to answer, for every ID, the real server in
// the snapshot's own Services (the very element, not a copy) for its
// service and nothing for any other service, and nothing for an ID no
// real server has or one past the table.
func TestSnapshotDestFindsEveryDest(t *testing.T) {
	tbl := &vs.Table{}
	for s := range 5 {
		svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, 0, byte(s + 1)}), Port: 80}, Sched: "rr"}
		for r := range 1 + s {
			svc.Reals = append(svc.Reals, vs.Real{Addr: netip.MustParseAddr(fmt.Sprintf("198.18.0.%d", 10+r)), Port: 80, Fwd: vs.Route, Weight: 1})
		}
		if err := tbl.AddService(svc); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := Build(tbl, BuildOptions{Registry: NewRegistry(), Loads: sched.NewLoads(MaxDests), Resolver: StaticResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	used := map[uint32]bool{}
	for si := range snap.Services {
		for di := range snap.Services[si].Dests {
			want := &snap.Services[si].Dests[di]
			used[want.ID] = true
			for sj := range snap.Services {
				d, ok := snap.dest(int32(sj), want.ID)
				if sj == si && (!ok || d != want) {
					t.Fatalf("dest(%d, %d) = %p %v, want %p (service %d's dest %d)", sj, want.ID, d, ok, want, si, di)
				}
				if sj != si && ok {
					t.Fatalf("dest(%d, %d) found %+v, but the ID is service %d's", sj, want.ID, *d, si)
				}
			}
		}
	}
	if len(used) != 1+2+3+4+5 {
		t.Fatalf("%d distinct dest IDs, want 15", len(used))
	}
	for id := range uint32(MaxDests + 2) {
		if used[id] {
			continue
		}
		if d, ok := snap.dest(0, id); ok {
			t.Fatalf("dest(0, %d) found %+v for an ID no real server has", id, *d)
		}
	}
}
