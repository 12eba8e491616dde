package dataplane

import (
	"net/netip"
	"testing"

	"github.com/afvs/afvs/vs"
)

func TestRegistryIDs(t *testing.T) {
	r := NewRegistry()
	t1 := oneService(vs.Route, "rr", 1, 1)
	_, d1, err := r.Assign(t1, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := svcMapKey(t1.Services[0].Key)
	a := DestKey{k, netip.MustParseAddr("198.18.0.11"), 80}
	b := DestKey{k, netip.MustParseAddr("198.18.0.12"), 80}
	// Stable across a reassignment of the same table.
	_, d2, _ := r.Assign(t1, nil)
	if d1[a] != d2[a] || d1[b] != d2[b] || d1[a] == d1[b] {
		t.Fatalf("IDs not stable or not distinct: %v %v", d1, d2)
	}
	// Remove b, add c: c gets a fresh ID, not b's, so b's counters are not inherited.
	t2 := t1.Clone()
	t2.Services[0].Reals[1].Addr = netip.MustParseAddr("198.18.0.13")
	_, d3, _ := r.Assign(t2, nil)
	c := DestKey{k, netip.MustParseAddr("198.18.0.13"), 80}
	if d3[c] == d1[b] || d3[a] != d1[a] {
		t.Fatalf("new server reused a freed ID while fresh ones remain: %v", d3)
	}
}

func TestRegistryReuseWaitsForConnections(t *testing.T) {
	r := NewRegistry()
	r.st.nextDst = MaxDests - 1 // one fresh ID left
	t1 := oneService(vs.Route, "rr", 1)
	_, d1, _ := r.Assign(t1, nil)
	old := d1[DestKey{svcMapKey(t1.Services[0].Key), netip.MustParseAddr("198.18.0.11"), 80}]
	t2 := t1.Clone()
	t2.Services[0].Reals[0].Addr = netip.MustParseAddr("198.18.0.99")
	busy := func(id uint32) bool { return id == old }
	if _, _, err := r.Assign(t2, busy); err == nil {
		t.Fatal("reused an ID that still has connections")
	}
	if _, d, err := r.Assign(t2, func(uint32) bool { return false }); err != nil || d[DestKey{svcMapKey(t2.Services[0].Key), netip.MustParseAddr("198.18.0.99"), 80}] != old {
		t.Fatalf("freed ID not reused once idle: %v %v", d, err)
	}
}

func TestRegistryRefusalChangesNothing(t *testing.T) {
	r := NewRegistry()
	r.st.nextDst = MaxDests - 1
	t1 := oneService(vs.Route, "rr", 1)
	_, d1, _ := r.Assign(t1, nil)
	t2 := oneService(vs.Route, "rr", 1, 1, 1) // needs two more IDs than exist
	if _, _, err := r.Assign(t2, func(uint32) bool { return true }); err == nil {
		t.Fatal("Assign beyond MaxDests succeeded")
	}
	_, d3, err := r.Assign(t1, nil)
	if err != nil || len(d3) != 1 {
		t.Fatal(err)
	}
	for k, v := range d1 {
		if d3[k] != v {
			t.Fatalf("a refused Assign changed %v's ID from %d to %d", k, v, d3[k])
		}
	}
}
