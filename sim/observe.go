package sim

import (
	"net/netip"

	"github.com/afvs/afvs/vs"
)

// Step is what the simulator reports to Options.Observe after each trace
// event, for tests that hold the dataplane to another model of IPVS. The
// value and its Dests slice are reused: copy what must outlive the call.
type Step struct {
	Line   int   // the event's trace line
	TimeMS int64 // its time
	Admin  bool  // an admin event; the fields below describe a packet
	// New: the packet opened a connection, Found: a real server was
	// chosen for it, Server: which.
	New, Found bool
	Server     netip.AddrPort
	// Dests lists every real server of every service after the event, in
	// each service's list order (the order the schedulers break ties
	// by), with the counts the schedulers read.
	Dests []DestCount
}

// DestCount is one real server's counters as the schedulers see them.
type DestCount struct {
	Service          vs.Key
	Server           netip.AddrPort
	Weight           int32
	Active, Inactive int32
}

// observe fills the reused step for ev and calls Options.Observe.
func (s *simulator) observe(ev *Event) {
	st := &s.step
	st.Line, st.TimeMS, st.Admin = ev.Line, ev.TimeMS, ev.Admin != ""
	st.New, st.Found, st.Server = false, false, netip.AddrPort{}
	if !st.Admin {
		d := &s.p.Last
		st.New, st.Found = d.New, d.Found
		if d.Found {
			if _, dest, ok := s.snap.DestByID(d.Dest); ok {
				st.Server = netip.AddrPortFrom(dest.IP(), dest.Port)
			}
		}
	}
	st.Dests = st.Dests[:0]
	for i := range s.snap.Services {
		svc := &s.snap.Services[i]
		for j := range svc.Dests {
			d := &svc.Dests[j]
			st.Dests = append(st.Dests, DestCount{
				Service: svc.Key, Server: netip.AddrPortFrom(d.IP(), d.Port), Weight: d.Weight,
				Active: s.loads.Active(d.ID), Inactive: s.loads.Inactive(d.ID),
			})
		}
	}
	s.opt.Observe(st)
}
