package control

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/syncd"
	"github.com/afvs/afvs/vs"
)

// Director is what the server needs from the dataplane. *director.Director
// implements it.
type Director interface {
	Apply(t *vs.Table) error
	Snapshot() *dataplane.Snapshot
	Counters() []*dataplane.Counters
	Workers() []*director.Worker
	// DeletedDests gives the address of every deleted real server whose
	// connections are still in the table, by dest ID (IPVS keeps it in
	// each connection, cp->daddr, so -L -c still shows it).
	DeletedDests() map[uint32]netip.AddrPort
}

// Server serves the control API and owns the current table.
type Server struct {
	d      Director
	reload func() (*vs.Table, func(), error)
	start  time.Time

	reloadMu sync.Mutex // one reload at a time: SIGHUP and /v1/reload may race

	mu    sync.Mutex // serialises changes
	table *vs.Table

	estMu   sync.Mutex
	svcEst  map[uint32]*estimator
	destEst map[uint32]*estimator

	extra func(*api.Status) // fills conntrack and steering figures
	ct    ConnTable

	health atomic.Pointer[health] // nil when health checks are off
	// healthNext is the latest SetHealth, which RunHealth takes up when
	// healthCh wakes it.
	healthNext atomic.Pointer[HealthOptions]
	healthOnce sync.Once
	healthCh   chan struct{}

	zeroMu   sync.Mutex
	svcBase  map[uint32]dataplane.Traffic
	destBase map[uint32]dataplane.Traffic

	sync SyncDaemons // nil: connection sync is not available
}

// SyncDaemons is the connection-sync daemon as the control plane drives
// it; *syncd.Manager implements it.
type SyncDaemons interface {
	Start(d ipvsadm.Daemon) error
	Stop(state ipvsadm.DaemonState) error
	Daemons() []ipvsadm.Daemon
	Stats() syncd.Stats
}

// SetSync gives the server the sync daemon that --start-daemon and
// --stop-daemon drive. Call it before serving.
func (s *Server) SetSync(d SyncDaemons) { s.sync = d }

// ConnTable is the connection table as the control plane sees it;
// *conntrack.Table implements it.
type ConnTable interface {
	Range(fn func(k conntrack.Key, c conntrack.Conn, expiresIn time.Duration, template bool) bool)
	SetTimeouts(tcp, tcpfin, udp time.Duration)
	TimeoutsSet() (tcp, tcpfin, udp time.Duration)
	Stats() conntrack.Stats
}

// New returns a server for d, whose table in force is t. reload re-reads
// the configuration for /v1/reload and SIGHUP: it returns the new table and
// a commit function (or nil) that puts the rest of the configuration in
// force, called only once the table has been accepted, so a refused reload
// changes nothing. extra adds figures the Director interface does not carry.
func New(d Director, ct ConnTable, t *vs.Table, reload func() (*vs.Table, func(), error), extra func(*api.Status)) *Server {
	return &Server{d: d, ct: ct, table: t.Clone(), reload: reload, start: time.Now(), extra: extra,
		svcEst: map[uint32]*estimator{}, destEst: map[uint32]*estimator{},
		svcBase: map[uint32]dataplane.Traffic{}, destBase: map[uint32]dataplane.Traffic{}}
}

// Table returns a copy of the table in force.
func (s *Server) Table() *vs.Table {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Clone()
}

// Update applies fn to a copy of the table and, if fn and the dataplane
// accept the result, makes it current. Otherwise nothing changes.
func (s *Server) Update(fn func(t *vs.Table) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table.Clone()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return err
	}
	if err := s.d.Apply(s.effective(t)); err != nil {
		return err
	}
	s.table = t
	return nil
}

// Reload re-reads the configuration and swaps it in, or leaves the old one
// running and says why.
func (s *Server) Reload() error {
	if s.reload == nil {
		return fmt.Errorf("reload: no configuration source")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	t, commit, err := s.reload()
	if err != nil {
		return fmt.Errorf("reload refused, old configuration still running: %w", err)
	}
	if t == nil {
		return fmt.Errorf("reload refused, old configuration still running: the configuration source gave no table")
	}
	if err := s.Update(func(cur *vs.Table) error {
		next := t.Clone()
		next.KeepDestOrder(cur)
		*cur = *next
		return nil
	}); err != nil {
		return fmt.Errorf("reload refused, old configuration still running: %w", err)
	}
	if commit != nil {
		commit()
	}
	return nil
}

// RunEstimator samples the counters every 2 s until stop closes.
func (s *Server) RunEstimator(stop <-chan struct{}) {
	tick := time.NewTicker(estimatorSeconds * time.Second)
	defer tick.Stop()
	s.SampleRates()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			s.SampleRates()
		}
	}
}

// SampleRates feeds every estimator the counters read now. RunEstimator
// calls it every 2 s; the rates it yields assume that period.
func (s *Server) SampleRates() {
	snap := s.d.Snapshot()
	if snap == nil {
		return
	}
	cs := s.d.Counters()
	s.estMu.Lock()
	defer s.estMu.Unlock()
	for _, svc := range snap.Services {
		e := s.svcEst[svc.ID]
		if e == nil {
			e = new(estimator)
			s.svcEst[svc.ID] = e
		}
		e.sample(dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Service(svc.ID) }))
		for _, d := range svc.Dests {
			e := s.destEst[d.ID]
			if e == nil {
				e = new(estimator)
				s.destEst[d.ID] = e
			}
			e.sample(dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(d.ID) }))
		}
	}
}

func (s *Server) rate(m map[uint32]*estimator, id uint32) api.Rate {
	s.estMu.Lock()
	defer s.estMu.Unlock()
	if e := m[id]; e != nil {
		return e.rate()
	}
	return api.Rate{}
}

func traffic(t dataplane.Traffic) api.Traffic {
	return api.Traffic{Conns: t.Conns, InPkts: t.InPkts, OutPkts: t.OutPkts, InBytes: t.InBytes, OutBytes: t.OutBytes}
}

// Status sums the workers' counters.
func (s *Server) Status() api.Status {
	st := api.Status{Version: api.Version, Uptime: time.Since(s.start).Seconds(), Drops: map[string]uint64{}, Steering: map[string]uint64{}}
	var tot dataplane.Totals
	for _, w := range s.d.Workers() {
		tot.Add(w.C)
		ws := api.WorkerStatus{Dev: w.Dev, Queue: w.Queue, CPU: w.CPU, RX: w.C.RX.Load(), TX: w.C.TX.Load(),
			Poll: w.PollConfig().String(), PollSleeps: w.Sleeps()}
		if b, ok := w.BusyPoll(); ok {
			ws.BusyPoll = b.String()
		}
		if sc, ok := w.Sockets(); ok {
			ws.FillEmpty, ws.TxRingFull, ws.KickErrors = sc.FillEmpty, sc.TxFull, sc.KickErrors
			ws.RxDropped, ws.RxRingFull, ws.RxFillRingEmpty = sc.RxDropped, sc.RxRingFull, sc.RxFillRingEmpty
			ws.RxBatches = sc.RxBatches
		}
		st.Workers = append(st.Workers, ws)
	}
	st.RX, st.TX, st.RXBytes, st.TXBytes, st.ICMPSent, st.Fragmented = tot.RX, tot.TX, tot.RXBytes, tot.TXBytes, tot.ICMPSent, tot.Fragmented
	st.Local = api.LocalStatus{Delivered: tot.LocalDelivered, Flows: tot.LocalFlows, Full: tot.LocalFull}
	st.ICMPForwarded = tot.ICMPForwarded
	sp := tot.SYNProxy
	st.SYNProxy = api.SYNProxyStatus{Cookies: sp.Cookies, Opened: sp.Opened, Established: sp.Established, Held: sp.Held, Resent: sp.Resent, HoldReplaced: sp.HoldReplaced}
	for i, n := range tot.Parse {
		if i != int(header.OK) {
			st.Drops[header.Reason(i).String()] = n
		}
	}
	for i, n := range tot.Drops {
		st.Drops[dataplane.Drop(i).String()] = n
		if m := tot.SYNDrops[i]; m != 0 {
			if st.SYNDrops == nil {
				st.SYNDrops = map[string]uint64{}
			}
			st.SYNDrops[dataplane.Drop(i).String()] = m
		}
	}
	st.Sync = s.syncStatus()
	if s.extra != nil {
		s.extra(&st)
	}
	return st
}

// syncStatus reports the sync daemons and their counters.
func (s *Server) syncStatus() api.SyncStatus {
	out := api.SyncStatus{Daemons: []api.SyncDaemon{}, Drops: map[string]uint64{}}
	if s.sync == nil {
		return out
	}
	for _, d := range s.sync.Daemons() {
		o := api.SyncDaemon{State: d.State.String(), Interface: d.McastIfn, SyncID: d.SyncID, MaxLen: d.SyncMaxlen, Port: d.McastPort, TTL: d.McastTTL}
		if d.McastGroup.IsValid() {
			o.Group = d.McastGroup.String()
		}
		out.Daemons = append(out.Daemons, o)
	}
	st := s.sync.Stats()
	out.SentMessages, out.SentEntries, out.SendErrors, out.QueueFull = st.SentMessages, st.SentEntries, st.SendErrors, st.QueueFull
	out.RecvMessages, out.RecvEntries, out.Installed, out.Updated, out.ReceiveErrors = st.RecvMessages, st.RecvEntries, st.Installed, st.Updated, st.ReceiveErrors
	out.Drops = st.Drops
	return out
}

// Loads is what Services needs for live connection counts.
type Loads interface {
	Active(id uint32) int32
	Inactive(id uint32) int32
	Overloaded(id uint32) bool
}

// Services lists the services with counters, rates and connection counts.
func (s *Server) Services(loads Loads) []api.Service {
	snap := s.d.Snapshot()
	if snap == nil {
		return nil
	}
	cs := s.d.Counters()
	t := snap.Table
	out := []api.Service{}
	persist := s.templateCounts()
	for i, vsvc := range t.Services {
		csvc := &snap.Services[i]
		o := api.Service{Proto: vsvc.Proto.String(), Port: vsvc.Port, FWMark: vsvc.FWMark, Scheduler: vsvc.Sched,
			SchedFlags: vsvc.SchedFlags, Persistent: vsvc.Persistent, Timeout: vsvc.Timeout, OnePacket: vsvc.OnePacket}
		if vsvc.FWMark != 0 {
			o.Proto = "fwm"
			o.IPv6 = vsvc.IPv6
		} else {
			o.Address = vsvc.Addr.String()
		}
		if vsvc.Persistent {
			o.Netmask = vsvc.Netmask.String()
		}
		o.Stats = traffic(s.since(s.svcBase, csvc.ID, dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Service(csvc.ID) })))
		o.Rate = s.rate(s.svcEst, csvc.ID)
		// The compiled dests, and so this list, are in the kernel's order
		// (newest first): what ipvsadm's netlink dump returns.
		reals := sched.KernelOrder(vsvc.Reals)
		for j := range reals {
			r, d := &reals[j], &csvc.Dests[j]
			fwd := r.Fwd
			if d.Local {
				// IPVS (before 2.6.37) made a dest on a local address
				// IP_VS_CONN_F_LOCALNODE, whatever method it was added
				// with; ipvsadm lists that as Local and saves it as -g.
				fwd = vs.Local
			}
			or := api.Real{Address: r.Addr.String(), Port: r.Port, Forward: fwd.String(), Weight: r.Weight, Upper: r.Upper, Lower: r.Lower, Resolved: d.HaveMAC, Up: s.Up(&vsvc, r)}
			or.Reachable, or.Status = reachability(d)
			if loads != nil {
				or.Active, or.Inactive, or.Overloaded = loads.Active(d.ID), loads.Inactive(d.ID), loads.Overloaded(d.ID)
			}
			or.Stats = traffic(s.destSince(snap, d.ID, dataplane.SumTraffic(cs, func(c *dataplane.Counters) dataplane.Traffic { return c.Dest(d.ID) })))
			or.PersistConns = int32(persist[d.ID])
			or.Rate = s.rate(s.destEst, d.ID)
			o.Reals = append(o.Reals, or)
		}
		out = append(out, o)
	}
	return out
}

// reachability says whether the director can send to a compiled real
// server and, if not, why.
func reachability(d *dataplane.Dest) (bool, string) {
	switch {
	case d.Local:
		return true, "ok: local node"
	case d.Unreachable != "":
		return false, "unreachable: " + d.Unreachable
	case d.Slot < 0:
		return false, "unreachable: no route"
	case !d.HaveMAC:
		return false, fmt.Sprintf("unreachable: next hop %s has no MAC yet", d.NextHop)
	}
	return true, "ok"
}

// Listen opens the unix socket at path with mode 0600, creating its
// directory (0700) and replacing a stale socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another afvs is listening there", path)
		}
		os.Remove(path)
	}
	old := umask(0o177)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

// Handler returns the HTTP API.
func (s *Server) Handler(loads Loads) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Status())
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Services(loads))
	})
	mux.HandleFunc("POST /v1/commands", s.commandsHandler)
	mux.HandleFunc("GET /v1/conns", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Conns())
	})
	mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.TimeoutsNow())
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Reload(); err != nil {
			writeJSON(w, http.StatusConflict, api.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "reloaded"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status line is sent; a client gone mid-body is not ours to report
}
