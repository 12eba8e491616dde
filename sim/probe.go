package sim

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// liveEntry is a connection or template alive before an admin event, with
// the service it belongs to and the server it is bound to.
type liveEntry struct {
	key  conntrack.Key
	svc  vs.Key
	dest uint32
}

type liveSet struct {
	flows, templates []liveEntry
}

// liveSet lists the live connections and templates whose server is in the
// current snapshot, sorted by key so the probes see them in a fixed order
// (the table's own order depends on its random hash seed).
func (s *simulator) liveSet() liveSet {
	var ls liveSet
	s.ct.Range(func(k conntrack.Key, c conntrack.Conn, _ time.Duration, tmpl bool) bool {
		svc, _, ok := s.snap.DestByID(c.Dest)
		if !ok {
			return true // its server is already gone: orphaned by an earlier event
		}
		e := liveEntry{key: k, svc: svc.Key, dest: c.Dest}
		if tmpl {
			ls.templates = append(ls.templates, e)
		} else {
			ls.flows = append(ls.flows, e)
		}
		return true
	})
	byKey := func(a, b liveEntry) int {
		if c := bytes.Compare(a.key.CAddr[:], b.key.CAddr[:]); c != 0 {
			return c
		}
		if c := bytes.Compare(a.key.VAddr[:], b.key.VAddr[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key.CPort, b.key.CPort); c != 0 {
			return c
		}
		if c := cmp.Compare(a.key.VPort, b.key.VPort); c != 0 {
			return c
		}
		return cmp.Compare(a.key.Proto, b.key.Proto)
	}
	slices.SortFunc(ls.flows, byKey)
	slices.SortFunc(ls.templates, byKey)
	return ls
}

// AdminEffect is what one admin event did to the flows and persistence
// templates alive just before it. See the package documentation for the
// exact meaning of moved and orphaned.
type AdminEffect struct {
	Line   int    // trace line
	TimeMS int64  // its time_ms
	Args   string // its ipvsadm arguments

	Flows         int // connections alive before the event
	FlowsMoved    int // of those, the probe sends to another server after it
	FlowsOrphaned int // of those, bound to a server the event removed: dropped from now on

	Templates         int
	TemplatesMoved    int
	TemplatesOrphaned int
}

// FlowsMovedFrac is FlowsMoved/Flows, 0 when there were none.
func (a AdminEffect) FlowsMovedFrac() float64 { return frac(a.FlowsMoved, a.Flows) }

// TemplatesMovedFrac is TemplatesMoved/Templates, 0 when there were none.
func (a AdminEffect) TemplatesMovedFrac() float64 { return frac(a.TemplatesMoved, a.Templates) }

func frac(n, d int) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// moved compares the probe assignments of the live set under the tables
// before and after an event, and counts entries whose server the event
// removed (the new snapshot no longer has their dest ID in that service).
func (s *simulator) moved(ls liveSet, before, after *vs.Table) (AdminEffect, error) {
	var eff AdminEffect
	for _, part := range []struct {
		entries           []liveEntry
		total, mv, orphan *int
	}{
		{ls.flows, &eff.Flows, &eff.FlowsMoved, &eff.FlowsOrphaned},
		{ls.templates, &eff.Templates, &eff.TemplatesMoved, &eff.TemplatesOrphaned},
	} {
		*part.total = len(part.entries)
		if len(part.entries) == 0 {
			continue
		}
		a, err := s.probe(before, part.entries)
		if err != nil {
			return eff, err
		}
		b, err := s.probe(after, part.entries)
		if err != nil {
			return eff, err
		}
		for i, e := range part.entries {
			if a[i] != b[i] {
				*part.mv++
			}
			if svc, _, ok := s.snap.DestByID(e.dest); !ok || svc.Key != e.svc {
				*part.orphan++
			}
		}
	}
	return eff, nil
}

// probe schedules every entry, in order, as a new connection on a fresh
// build of t with its own registry and load counters, so the live state is
// untouched. Each pick is counted as an active connection, so the
// least-connection family spreads the probe as it would spread real
// arrivals. The result holds the chosen server per entry, the zero
// AddrPort for none.
func (s *simulator) probe(t *vs.Table, entries []liveEntry) ([]netip.AddrPort, error) {
	loads := sched.NewLoads(dataplane.MaxDests)
	opt := s.sopt
	rng := newProbeRand(s.opt.Seed)
	opt.Rand = rng.uint32n
	snap, err := dataplane.Build(t, dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: loads,
		Resolver: dataplane.StaticResolver{}, Ifaces: s.iface, Sched: opt})
	if err != nil {
		return nil, err
	}
	defer func() {
		for i := range snap.Services {
			sched.Release(snap.Services[i].Sched)
		}
	}()
	out := make([]netip.AddrPort, len(entries))
	var f sched.Flow
	for i := range entries {
		e := &entries[i]
		svc, ok := snap.ServiceByKey(e.svc)
		if !ok {
			continue
		}
		f = sched.Flow{Proto: e.key.Proto, CAddr: e.key.CAddr, CPort: e.key.CPort, VAddr: e.key.VAddr, VPort: e.key.VPort}
		j := svc.Sched.Schedule(&f)
		if j < 0 {
			continue
		}
		d := &svc.Dests[j]
		loads.Bind(d.ID, true)
		out[i] = netip.AddrPortFrom(d.IP(), d.Port)
	}
	return out, nil
}

// probeRand gives both probes of an event the same draws, so twos' random
// choices do not show up as movement.
type probeRand struct{ r *rand.Rand }

func newProbeRand(seed uint64) *probeRand {
	return &probeRand{rand.New(rand.NewPCG(seed, ^seed))}
}

func (p *probeRand) uint32n(n uint32) uint32 { return p.r.Uint32N(n) }
