package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/configfile"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/syncd"
	"github.com/afvs/afvs/vs"
)

func runDaemon(args []string) error {
	// Signals are caught before anything else, so that one arriving while
	// afvs starts waits for the main loop: without a handler, SIGHUP would
	// end the process half set up, and SIGTERM skip the cleanup.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	fs := pflag.NewFlagSet("afvs run", pflag.ContinueOnError)
	path := fs.String("config", "", "config file (.yaml, .toml or .json); without it the built-in default config is used")
	fs.String("xdp-mode", "auto", "XDP attach mode: auto, native or generic")
	fs.String("metrics", "", "metrics listen address ip:port (empty string disables)")
	fs.String("socket", "", "control socket path")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.StringSlice("interface", nil, "interfaces that receive virtual-service traffic (overrides the config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := configfile.Load(*path, fs)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level)
	log.Info("afvs starting", "pid", os.Getpid())
	if *path == "" {
		log.Info("no --config given: using the built-in default config", "service", "tcp 198.19.0.1:80 wlc", "reals", "198.18.0.11-13 weights 1,2,3 (DR)")
	}
	table, mode, err := preflight(cfg)
	if err != nil {
		return err
	}
	d, err := director.New(directorOptions(cfg, mode, log), table)
	if err != nil {
		return err
	}
	if err := d.CT.SetSysctls(cfg.Sysctls()); err != nil {
		d.Close()
		return err
	}
	if err := d.CT.SetDefense(cfg.IPVSDefense()); err != nil {
		d.Close()
		return err
	}
	rates, err := cfg.SYNServiceRates()
	if err == nil {
		err = d.SetSYNServiceRates(rates)
	}
	var proxied map[vs.Key]bool
	if err == nil {
		proxied, err = cfg.SYNProxyServices()
	}
	if err != nil {
		d.Close()
		return err
	}
	d.SetSYNProxy(cfg.Defense.SYNProxy, proxied)
	defer d.Close()

	// The sync daemon: what --start-daemon starts, and the config's
	// sync section at start and at reloads that change it.
	syncs := syncd.New(d, syncOptions(cfg, log))
	defer syncs.Close()
	var syncCfg atomic.Pointer[*config.Config]
	syncCfg.Store(&cfg)

	var srv *control.Server // set below; reloads run only once it is
	var checks atomic.Pointer[map[vs.Key]control.ServiceCheck]
	cm, err := serviceChecks(cfg)
	if err != nil {
		return err
	}
	checks.Store(&cm)
	var sorry atomic.Pointer[map[vs.Key]vs.Real]
	sm, err := cfg.SorryServers()
	if err != nil {
		return err
	}
	sorry.Store(&sm)
	reload := func() (*vs.Table, func(), error) {
		c, err := configfile.Load(*path, fs)
		if err != nil {
			return nil, nil, err
		}
		t, err := c.VS()
		if err != nil {
			return nil, nil, err
		}
		cm, err := serviceChecks(c)
		if err != nil {
			return nil, nil, err
		}
		sm, err := c.SorryServers()
		if err != nil {
			return nil, nil, err
		}
		rates, err := c.SYNServiceRates()
		if err != nil {
			return nil, nil, err
		}
		proxied, err := c.SYNProxyServices()
		if err != nil {
			return nil, nil, err
		}
		// Interfaces, sockets and table sizes are fixed at start-up; say
		// so rather than ignore a change silently.
		for _, k := range restartOnly(cfg, c) {
			log.Warn("reload: this setting takes effect only at restart", "key", k)
		}
		// Timeouts change only once the table is accepted: a refused reload
		// must leave everything as it was.
		commit := func() {
			prev := *syncCfg.Load()
			d.CT.SetTimeouts(c.Timeouts.TCP, c.Timeouts.TCPFin, c.Timeouts.UDP)
			syncs.SetOptions(syncOptions(c, log))
			if !reflect.DeepEqual(prev.Sync, c.Sync) {
				for _, err := range reloadSync(syncs, prev, c) {
					log.Error("reload: sync daemon", "err", err)
				}
			}
			syncCfg.Store(&c)
			if err := d.CT.SetSysctls(c.Sysctls()); err != nil { // validated with the config: should not happen
				log.Error("reload: ipvs settings not applied", "err", err)
			}
			if err := d.CT.SetDefense(c.IPVSDefense()); err != nil { // validated too
				log.Error("reload: ipvs defence settings not applied", "err", err)
			}
			if err := d.SetSYNServiceRates(rates); err != nil { // validated too
				log.Error("reload: services' syn_rate not applied", "err", err)
			}
			d.SetSYNProxy(c.Defense.SYNProxy, proxied)
			if c.SYNLimits() != d.SYNLimits() {
				if err := d.SetSYNLimits(c.SYNLimits()); err != nil { // validated too
					log.Error("reload: defense settings not applied", "err", err)
				}
			}
			checks.Store(&cm)
			sorry.Store(&sm)
			// Health settings apply now; each server keeps its up/down
			// state and counts, unless checks are turned off.
			for _, ch := range healthChanges(prev, c) {
				log.Info("reload: health setting changed", "key", ch.key, "old", ch.old, "new", ch.new)
			}
			switch {
			case prev.Health.Interval > 0 && c.Health.Interval <= 0:
				log.Info("reload: health checks off: every real server back at its configured weight")
			case prev.Health.Interval <= 0 && c.Health.Interval > 0:
				log.Info("reload: health checks on", "type", c.Health.Type, "interval", c.Health.Interval, "rise", c.Health.Rise, "fall", c.Health.Fall)
			}
			srv.SetHealth(healthOptions(c, &checks, &sorry, log))
			if err := d.SetPoll(*pollConfig(c)); err != nil { // validated with the config: should not happen
				log.Error("reload: poll settings not applied", "err", err)
			}
		}
		return t, commit, nil
	}
	srv = control.New(d, d.CT, table, reload, func(st *api.Status) { fillStatus(d, st) })
	srv.SetSync(syncs)
	stop := make(chan struct{})
	defer close(stop)
	go srv.RunEstimator(stop)
	// Health checks run even when off at start, so a reload can turn
	// them on.
	go srv.RunHealth(healthOptions(cfg, &checks, &sorry, log), stop)
	if cfg.Health.Interval > 0 {
		log.Info("health checks on", "type", cfg.Health.Type, "interval", cfg.Health.Interval, "rise", cfg.Health.Rise, "fall", cfg.Health.Fall)
	}

	var servers []*http.Server
	if cfg.Control.Socket != "" {
		l, err := control.Listen(cfg.Control.Socket)
		if err != nil {
			return err
		}
		defer os.Remove(cfg.Control.Socket)
		lim := control.DefaultHTTPLimits
		hs := control.NewHTTPServer(srv.Handler(d.Loads), lim)
		servers = append(servers, hs)
		// The cap is under the peer check, so refused peers hold slots
		// too until they are answered: a flood of them stays bounded.
		go func() { _ = hs.Serve(control.RootOnly(control.LimitConns(l, lim.MaxConns))) }() // returns at Shutdown
		log.Info("control API listening", "socket", cfg.Control.Socket)
	}
	if cfg.Metrics.Address != "" {
		l, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			return fmt.Errorf("metrics.address %s: %w", cfg.Metrics.Address, err)
		}
		hs := control.NewHTTPServer(control.MetricsHandler(srv, metricsSource{d}), control.DefaultHTTPLimits)
		servers = append(servers, hs)
		go func() { _ = hs.Serve(control.LimitConns(l, control.DefaultHTTPLimits.MaxConns)) }() // returns at Shutdown
		log.Info("metrics listening", "address", cfg.Metrics.Address)
	}

	d.Start()
	for _, sd := range cfg.SyncDaemons() {
		if err := syncs.Start(sd); err != nil {
			return fmt.Errorf("sync.%s: %w", sd.State, err)
		}
	}
	log.Info("afvs running", "services", len(table.Services), "workers", len(d.Workers()))

	for s := range sig {
		if s == syscall.SIGHUP {
			if err := srv.Reload(); err != nil {
				log.Error("reload", "err", err)
			} else {
				log.Info("reloaded configuration")
			}
			continue
		}
		log.Info("shutting down", "signal", s.String())
		break
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, hs := range servers {
		_ = hs.Shutdown(ctx) // best effort on the way out
	}
	return nil
}

// syncOptions are the sync daemon's settings from a config.
func syncOptions(c *config.Config, log *slog.Logger) syncd.Options {
	return syncd.Options{Settings: c.SyncSettings(), FlushAfter: c.Sync.FlushInterval, Log: log}
}

// reloadSync puts a reloaded sync section in force: each role whose
// configuration changed is stopped (whatever afvsadm made of it since)
// and started again if the new config names it. A role whose
// configuration did not change keeps what afvsadm made of it, so a
// reload does not undo a failover's role switch.
func reloadSync(sm *syncd.Manager, prev, cur *config.Config) []error {
	var errs []error
	for _, role := range []struct {
		state     ipvsadm.DaemonState
		old, next config.SyncDaemonConfig
	}{
		{ipvsadm.Master, prev.Sync.Master, cur.Sync.Master},
		{ipvsadm.Backup, prev.Sync.Backup, cur.Sync.Backup},
	} {
		if role.old == role.next {
			continue
		}
		if err := sm.Stop(role.state); err != nil && !errors.Is(err, syncd.ErrNotRunning) {
			errs = append(errs, err)
		}
		if d, ok := role.next.Daemon(role.state); ok {
			if err := sm.Start(d); err != nil {
				errs = append(errs, fmt.Errorf("sync.%s: %w", role.state, err))
			}
		}
	}
	return errs
}

// restartOnly names the settings that differ between the running config
// and a reloaded one but cannot change without a restart.
func restartOnly(old, cur *config.Config) []string {
	var keys []string
	if !slices.Equal(old.Interfaces, cur.Interfaces) {
		keys = append(keys, "interfaces")
	}
	if old.XDPMode != cur.XDPMode {
		keys = append(keys, "xdp_mode")
	}
	if !maps.Equal(old.CPUs, cur.CPUs) {
		keys = append(keys, "cpus")
	}
	if old.Frames != cur.Frames {
		keys = append(keys, "frames")
	}
	if old.Rings != cur.Rings {
		keys = append(keys, "rings")
	}
	if old.Table != cur.Table {
		keys = append(keys, "table")
	}
	if old.ICMP != cur.ICMP {
		keys = append(keys, "icmp")
	}
	if old.Metrics != cur.Metrics {
		keys = append(keys, "metrics")
	}
	if old.Control != cur.Control {
		keys = append(keys, "control")
	}
	if !maps.Equal(old.VIPMACs, cur.VIPMACs) {
		keys = append(keys, "vip_macs")
	}
	if old.Defense.BlockFor != cur.Defense.BlockFor {
		keys = append(keys, "defense.block_for")
	}
	if old.Defense.BlockPrefix6 != cur.Defense.BlockPrefix6 {
		keys = append(keys, "defense.block_prefix6")
	}
	return keys
}

func directorOptions(cfg *config.Config, mode xdpprog.Mode, log *slog.Logger) director.Options {
	return director.Options{
		Interfaces: cfg.Interfaces, Mode: mode, CPUs: cfg.CPUs, Frames: cfg.Frames, RxRing: cfg.Rings.RX, FillRing: cfg.Rings.Fill,
		Capacity: cfg.Table.Capacity, Templates: cfg.Table.Templates, NoNAT: !cfg.Table.NAT,
		TCP: cfg.Timeouts.TCP, TCPFin: cfg.Timeouts.TCPFin, UDP: cfg.Timeouts.UDP,
		ICMPRate: cfg.ICMP.Rate, ICMPBurst: cfg.ICMP.Burst,
		ICMPHostEvery: hostEvery(cfg.ICMP.HostInterval), ICMPHostBurst: cfg.ICMP.HostBurst,
		VIPMACs: cfg.VIPMACsByInterface(), Poll: pollConfig(cfg), SYN: cfg.SYNLimits(), BlockFor: cfg.Defense.BlockFor, BlockPrefix6: cfg.Defense.BlockPrefix6, Log: log,
	}
}

// pollConfig converts the poll section; Validate has checked it, and
// CheckOptions checks the result again.
func pollConfig(cfg *config.Config) *director.PollConfig {
	m, err := director.ParsePollMode(cfg.Poll.Mode)
	if err != nil {
		m = director.PollMode(255) // refused by CheckOptions, naming poll.mode
	}
	return &director.PollConfig{Mode: m, Spin: cfg.Poll.Spin}
}

func fillStatus(d *director.Director, st *api.Status) {
	if st.Steering == nil {
		st.Steering = map[string]uint64{}
	}
	st.Table = control.TableStatus(d.CT)
	st.Defense = control.DefenseStatus(d.CT, d.SYNLimits())
	if s, err := d.Steering(); err == nil {
		st.Steering["total"] = s.Total
		st.Steering["redirected"] = s.Redirected
		st.Steering["passed"] = s.Passed()
		st.Steering["fragments"] = s.Fragments
		st.Steering["icmp_errors"] = s.ICMPErrors
		st.Steering["other_mac"] = s.PassOtherMAC
		st.Steering["local"] = s.PassLocal
		st.Steering["blocked"] = s.Blocked
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func runCheck(args []string) error {
	fs := pflag.NewFlagSet("afvs check", pflag.ContinueOnError)
	path := fs.String("config", "", "config file to validate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("--config FILE is required")
	}
	cfg, err := configfile.Load(*path, nil)
	if err != nil {
		return err
	}
	t, _, err := preflight(cfg)
	if err != nil {
		return fmt.Errorf("config %s: %w", *path, err)
	}
	fmt.Printf("config %s: ok (%d services, %d interfaces)\n", *path, len(t.Services), len(cfg.Interfaces))
	return nil
}

// preflight makes every check of the configuration that `afvs run` makes
// before it touches the network, so that `afvs check` refuses what run
// would: the table, the XDP mode, the director's options (interfaces, ICMP
// limits, connection table size), the health checks and sorry servers, and
// the table compiled as the daemon's first apply compiles it, with a static
// resolver, and held to the steering map's size.
func preflight(cfg *config.Config) (*vs.Table, xdpprog.Mode, error) {
	t, err := cfg.VS()
	if err != nil {
		return nil, 0, err
	}
	mode, err := xdpprog.ParseMode(cfg.XDPMode)
	if err != nil {
		return nil, 0, err
	}
	if err := director.CheckOptions(directorOptions(cfg, mode, nil)); err != nil {
		return nil, 0, err
	}
	if _, err := serviceChecks(cfg); err != nil {
		return nil, 0, err
	}
	if _, err := cfg.SorryServers(); err != nil {
		return nil, 0, err
	}
	for _, sd := range cfg.SyncDaemons() {
		if err := syncd.Check(sd); err != nil {
			return nil, 0, fmt.Errorf("config: sync.%s: %w", sd.State, err)
		}
	}
	bo := dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: sched.NewLoads(dataplane.MaxDests),
		Resolver: dataplane.StaticResolver{}, Ifaces: []dataplane.Iface{{MTU: 1500}}}
	p, err := dataplane.Compile(t, bo)
	if err != nil {
		return nil, 0, err
	}
	defer p.Abort()
	if err := director.CheckSteering(p.Snap); err != nil {
		return nil, 0, err
	}
	return t, mode, nil
}

// metricsSource adapts the director to what the metrics collector reads.
type metricsSource struct{ *director.Director }

func (m metricsSource) Loads() control.Loads { return m.Director.Loads }

func (m metricsSource) TableStatus() api.TableStatus { return control.TableStatus(m.CT) }

// runReload is `afvs reload`: ask the running daemon to re-read its
// configuration, as SIGHUP does, and report whether it took. The socket
// comes from --socket, else from --config's control.socket, else the
// default.
func runReload(args []string) error {
	fs := pflag.NewFlagSet("afvs reload", pflag.ContinueOnError)
	path := fs.String("config", "", "config file whose control.socket to use")
	sock := fs.String("socket", "", "control socket path (overrides --config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: reload takes only --config and --socket", fs.Arg(0))
	}
	s := *sock
	if s == "" && *path != "" {
		cfg, err := configfile.Load(*path, nil)
		if err != nil {
			return err
		}
		s = cfg.Control.Socket
	}
	if s == "" {
		s = os.Getenv("AFVS_SOCKET")
	}
	if s == "" {
		s = api.DefaultSocket
	}
	if err := api.NewClient(s).Reload(); err != nil {
		return err
	}
	fmt.Println("afvs: configuration reloaded")
	return nil
}

// hostEvery maps the config's per-client ICMP interval, where 0 means off,
// onto director.Options', where 0 means the default and below 0 off.
func hostEvery(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
