package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvsadm/apply"
	"github.com/afvs/afvs/vs"
)

// Commands parses and applies ipvsadm command lines atomically: every
// table change goes to one copy, which is published only if all of them
// and the dataplane accept it. --set and -Z take effect only then too.
func (s *Server) Commands(lines [][]string) error {
	var cmds []*ipvsadm.Command
	for i, line := range lines {
		c, err := ipvsadm.Parse(line)
		if err != nil {
			if len(lines) > 1 {
				return fmt.Errorf("command %d: %w", i+1, err)
			}
			return err
		}
		cmds = append(cmds, c)
	}
	for i, c := range cmds {
		if c.Kind != ipvsadm.StartDaemon && c.Kind != ipvsadm.StopDaemon {
			continue
		}
		if len(cmds) > 1 {
			return fmt.Errorf("command %d (--%s %s): a sync daemon command must be alone in its batch", i+1, c.Kind, c.Daemon.State)
		}
		return s.daemonCommand(c)
	}
	var zero []*ipvsadm.Command
	var set *ipvsadm.Command
	err := s.Update(func(t *vs.Table) error {
		for i, c := range cmds {
			switch c.Kind {
			case ipvsadm.Zero:
				if c.HasService && t.Find(apply.ServiceKey(c.Service)) < 0 {
					return ipvsadm.ErrNoService
				}
				zero = append(zero, c)
			case ipvsadm.SetTimeout:
				set = c
			case ipvsadm.List, ipvsadm.Save, ipvsadm.Help, ipvsadm.Version, ipvsadm.Restore:
				return fmt.Errorf("command %d (%s): not a change; run it with afvsadm", i+1, c.Kind)
			default:
				if err := apply.Command(t, c); err != nil {
					if len(cmds) > 1 {
						return fmt.Errorf("command %d: %w", i+1, err)
					}
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if set != nil {
		sec := func(v uint32) time.Duration { return time.Duration(v) * time.Second }
		s.ct.SetTimeouts(sec(set.Timeouts.TCP), sec(set.Timeouts.TCPFin), sec(set.Timeouts.UDP))
	}
	for _, z := range zero {
		s.zero(z)
	}
	return nil
}

// daemonCommand starts or stops a sync daemon, with the kernel's answers
// for a role already running or not running, in ipvsadm's words.
func (s *Server) daemonCommand(c *ipvsadm.Command) error {
	if s.sync == nil {
		return fmt.Errorf("--%s %s: connection sync is not available in this daemon", c.Kind, c.Daemon.State)
	}
	if c.Kind == ipvsadm.StartDaemon {
		return s.sync.Start(c.Daemon)
	}
	return s.sync.Stop(c.Daemon.State)
}

// zero makes the counters of one service (or all) read zero from now on.
// Worker counters are never written by the control plane; a base is kept
// and subtracted instead.
func (s *Server) zero(c *ipvsadm.Command) {
	snap := s.d.Snapshot()
	cs := s.d.Counters()
	s.zeroMu.Lock()
	defer s.zeroMu.Unlock()
	for _, svc := range snap.Services {
		if c.HasService && svcMapKey(svc.Key) != svcMapKey(apply.ServiceKey(c.Service)) {
			continue
		}
		s.svcBase[svc.ID] = dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Service(svc.ID) })
		for _, d := range svc.Dests {
			s.destBase[d.ID] = dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(d.ID) })
		}
	}
}

// destSince is a real server's traffic t since its counters were last
// zeroed: by -Z, or by the dataplane when the dest came back from the
// trash into a re-created service or its ID passed to a new server. Both
// bases are readings of the same monotonic counters, so the later one is
// the larger in every field.
func (s *Server) destSince(snap *dataplane.Snapshot, id uint32, t dataplane.Traffic) dataplane.Traffic {
	s.zeroMu.Lock()
	b, ok := s.destBase[id]
	s.zeroMu.Unlock()
	if r, restarted := snap.RestartBase(id); restarted {
		b = dataplane.Traffic{Conns: max(b.Conns, r.Conns), InPkts: max(b.InPkts, r.InPkts), OutPkts: max(b.OutPkts, r.OutPkts), InBytes: max(b.InBytes, r.InBytes), OutBytes: max(b.OutBytes, r.OutBytes)}
		ok = true
	}
	if !ok {
		return t
	}
	return dataplane.Traffic{Conns: t.Conns - b.Conns, InPkts: t.InPkts - b.InPkts, OutPkts: t.OutPkts - b.OutPkts, InBytes: t.InBytes - b.InBytes, OutBytes: t.OutBytes - b.OutBytes}
}

func svcMapKey(k vs.Key) vs.Key {
	if k.FWMark != 0 {
		return vs.Key{FWMark: k.FWMark, IPv6: k.IPv6}
	}
	return k
}

// since subtracts a -Z base.
func (s *Server) since(base map[uint32]dataplane.Traffic, id uint32, t dataplane.Traffic) dataplane.Traffic {
	s.zeroMu.Lock()
	b, ok := base[id]
	s.zeroMu.Unlock()
	if !ok {
		return t
	}
	return dataplane.Traffic{Conns: t.Conns - b.Conns, InPkts: t.InPkts - b.InPkts, OutPkts: t.OutPkts - b.OutPkts, InBytes: t.InBytes - b.InBytes, OutBytes: t.OutBytes - b.OutBytes}
}

// templateCounts counts persistence templates per real server, for
// ipvsadm --persistent-conn.
func (s *Server) templateCounts() map[uint32]int {
	out := map[uint32]int{}
	if s.ct == nil {
		return out
	}
	s.ct.Range(func(_ conntrack.Key, c conntrack.Conn, _ time.Duration, template bool) bool {
		if template {
			out[c.Dest]++
		}
		return true
	})
	return out
}

// Conns lists the connection table, templates included.
func (s *Server) Conns() []api.Conn {
	out := []api.Conn{}
	snap := s.d.Snapshot()
	if s.ct == nil || snap == nil {
		return out
	}
	deleted := s.d.DeletedDests()
	addr := func(a [16]byte, port uint16) string {
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port).String()
	}
	s.ct.Range(func(k conntrack.Key, c conntrack.Conn, exp time.Duration, template bool) bool {
		o := api.Conn{Proto: vs.Proto(k.Proto).String(), Client: addr(k.CAddr, k.CPort), Virtual: addr(k.VAddr, k.VPort),
			State: c.State.String(), Expires: exp.Seconds(), Template: template, Dest: "0.0.0.0:0"}
		if k.Proto == 0 {
			o.Proto = "ip"
		}
		if _, d, ok := snap.DestByID(c.Dest); ok {
			o.Dest = netip.AddrPortFrom(d.IP(), d.Port).String()
		} else if a, ok := deleted[c.Dest]; ok {
			o.Dest = a.String() // its server was deleted
		}
		out = append(out, o)
		return true
	})
	return out
}

// TimeoutsNow reports the three ipvsadm timeouts.
func (s *Server) TimeoutsNow() api.Timeouts {
	tcp, fin, udp := s.ct.TimeoutsSet()
	return api.Timeouts{TCP: uint32(tcp / time.Second), TCPFin: uint32(fin / time.Second), UDP: uint32(udp / time.Second)}
}

func (s *Server) commandsHandler(w http.ResponseWriter, r *http.Request) {
	var req api.CommandsRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, api.MaxCommandsBytes)).Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, api.ErrorBody{Error: fmt.Sprintf("request body: larger than %d bytes, the limit for a batch of commands", api.MaxCommandsBytes)})
			return
		}
		writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: fmt.Sprintf("request body: %v", err)})
		return
	}
	if err := s.Commands(req.Commands); err != nil {
		writeJSON(w, http.StatusConflict, api.ErrorBody{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"applied": len(req.Commands)})
}
