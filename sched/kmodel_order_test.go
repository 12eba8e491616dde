package sched

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/afvs/afvs/vs"
)

// TestIPVSDHHashkey checks dh's bucket against ip_vs_dh_hashkey in
// mainline: hash_32(ntohl(addr), IP_VS_DH_TAB_BITS), the top 8 bits of
// addr * 0x61C88647 in 32 bits. The expected buckets were worked out by
// hand from that formula; the old multiplicative mask ((addr * 2654435761)
// & 255) gives 177, 98, 177 and 79 for these addresses.
func TestIPVSDHHashkey(t *testing.T) {
	cases := []struct {
		addr   string
		bucket int
	}{
		{"198.19.0.1", 67},
		{"198.19.0.2", 164},
		{"10.0.0.1", 39},
		{"255.255.255.255", 158},
	}
	// One dest per bucket, so the pick is the bucket number.
	ds := make([]Dest, 256)
	for i := range ds {
		ds[i] = Dest{ID: uint32(i), Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}).As16(), Weight: 1}
	}
	s, err := New("dh", ds, 0, NewLoads(256), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		f := Flow{Proto: 6, VAddr: netip.MustParseAddr(c.addr).As16()}
		if got := s.Schedule(&f); got != c.bucket {
			t.Errorf("dh: daddr %s: bucket %d, want %d", c.addr, got, c.bucket)
		}
	}
}

// TestIPVSLBLCHashkey checks the lblc/lblcr cache bucket against
// ip_vs_lblc_hashkey and ip_vs_lblcr_hashkey in mainline: hash_32 of the
// address with IP_VS_LBLC_TAB_BITS = 10. The bucket decides the order in
// which ip_vs_lblc_check_expire visits entries when the cache is over
// size. Expected values by hand; the old mask gave 433, 866 and 591.
func TestIPVSLBLCHashkey(t *testing.T) {
	cases := []struct {
		addr   string
		bucket uint32
	}{
		{"198.19.0.1", 268},
		{"198.19.0.2", 659},
		{"255.255.255.255", 632},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr).As16()
		if got := cacheHash(&a); got != c.bucket {
			t.Errorf("lblc: daddr %s: bucket %d, want %d", c.addr, got, c.bucket)
		}
	}
}

// The kernel model's svc->destinations, written from ip_vs_ctl.c without
// KernelOrder: __ip_vs_update_dest links a new dest at the head
// (list_add_rcu), ip_vs_edit_dest changes it where it stands, and
// __ip_vs_unlink_dest takes it out (list_del_rcu).

func kAddDest(list []Dest, d Dest) []Dest {
	return append([]Dest{d}, list...)
}

func kDelDest(list []Dest, id uint32) []Dest {
	out := make([]Dest, 0, len(list))
	for _, d := range list {
		if d.ID != id {
			out = append(out, d)
		}
	}
	return out
}

func kEditDest(list []Dest, id uint32, edit func(*Dest)) []Dest {
	out := slices.Clone(list)
	for i := range out {
		if out[i].ID == id {
			edit(&out[i])
		}
	}
	return out
}

// reload models a configuration reload: the new file lists a random
// subset of the dests in a random order, maybe with new ones among them.
// The model takes it through vs.Table.KeepDestOrder, as the control
// server does; the kernel model deletes the dests the file dropped and
// adds the new ones in file order (what keepalived or ipvsadm would do),
// leaving the kept ones where they are.
func (h *harness) reload() {
	file := slices.Clone(h.added)
	h.rng.Shuffle(len(file), func(i, j int) { file[i], file[j] = file[j], file[i] })
	file = file[:1+h.rng.IntN(len(file))]
	for n := h.rng.IntN(3); n > 0 && len(h.added)+n < 40 && int(h.next) < maxIDs; n-- {
		d := h.newDest()
		file = slices.Insert(file, h.rng.IntN(len(file)+1), d)
	}
	toTable := func(ds []Dest) *vs.Table {
		svc := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}}
		for _, d := range ds {
			svc.Reals = append(svc.Reals, vs.Real{Addr: netip.AddrFrom16(d.Addr), Port: d.Port})
		}
		return &vs.Table{Services: []vs.Service{svc}}
	}
	byAddr := map[netip.AddrPort]Dest{}
	for _, d := range file {
		byAddr[netip.AddrPortFrom(netip.AddrFrom16(d.Addr), d.Port)] = d
	}
	next := toTable(file)
	next.KeepDestOrder(toTable(h.added))
	h.added = h.added[:0]
	for _, r := range next.Services[0].Reals {
		h.added = append(h.added, byAddr[r.AddrPort()])
	}
	in := func(list []Dest, id uint32) bool {
		return slices.ContainsFunc(list, func(d Dest) bool { return d.ID == id })
	}
	for _, d := range slices.Clone(h.klist) {
		if !in(file, d.ID) {
			h.klist = kDelDest(h.klist, d.ID)
		}
	}
	for _, d := range file {
		if !in(h.klist, d.ID) {
			h.klist = kAddDest(h.klist, d)
		}
	}
}
