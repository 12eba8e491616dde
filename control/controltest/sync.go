package controltest

import (
	"sync"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/syncd"
)

// Sync is a sync daemon without sockets: it refuses what syncd.Manager
// refuses before it opens anything (syncd.Check: the role, the group and
// the interface, which must exist on the host) and runs each started role
// with the values the kernel fills in (syncd.Fill) for an interface of
// MTU bytes. It lets tests start daemons on groups the host's interfaces
// cannot carry, such as an IPv6 group on lo.
type Sync struct {
	MTU int

	mu      sync.Mutex
	running [3]*ipvsadm.Daemon // by ipvsadm.DaemonState
}

// Start is syncd.Manager.Start without the sockets.
func (s *Sync) Start(d ipvsadm.Daemon) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(d.State) < len(s.running) && s.running[d.State] != nil {
		return syncd.ErrRunning
	}
	if err := syncd.Check(d); err != nil {
		return err
	}
	d = syncd.Fill(d, s.MTU)
	s.running[d.State] = &d
	return nil
}

// Stop is syncd.Manager.Stop.
func (s *Sync) Stop(state ipvsadm.DaemonState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if int(state) >= len(s.running) || s.running[state] == nil {
		return syncd.ErrNotRunning
	}
	s.running[state] = nil
	return nil
}

// Daemons lists the running roles, master first.
func (s *Sync) Daemons() []ipvsadm.Daemon {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ipvsadm.Daemon
	for _, d := range s.running {
		if d != nil {
			out = append(out, *d)
		}
	}
	return out
}

// Stats are zero: nothing is sent or received.
func (s *Sync) Stats() syncd.Stats { return syncd.Stats{Drops: map[string]uint64{}} }
