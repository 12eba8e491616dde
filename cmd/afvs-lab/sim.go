package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/internal/configfile"
	"github.com/afvs/afvs/sim"
)

// runSim is `afvs-lab sim`: replay a trace through the dataplane's scheduling
// path offline, or (--generate) write a synthetic trace and config first.
func runSim(args []string) error {
	fs := pflag.NewFlagSet("afvs-lab sim", pflag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file with the services (the built-in default without it)")
	tracePath := fs.String("trace", "", "trace CSV to replay; with --generate, the trace to write")
	outPath := fs.String("out", "", "decisions CSV to write, one line per new connection")
	summaryPath := fs.String("summary", "", "write the summary here ('-' for stdout)")
	plotPath := fs.String("plot", "", "write a PNG of active connections per real server over time")
	capacity := fs.Int("capacity", 1<<14, "connection table size: the trace's concurrent connections, not the daemon's table.capacity (the expiry scan before each event grows with it)")
	templates := fs.Int("templates", 1<<12, "persistence template table size")
	seed := fs.Uint64("seed", 0, "seed for randomized choices (twos) and, with --generate, for the workload (0: from the clock)")

	generate := fs.Bool("generate", false, "write a synthetic workload to --trace (and --gen-config), then simulate it if --out is given")
	genConfig := fs.String("gen-config", "", "with --generate: also write a config with the workload's service and real servers")
	rate := fs.Float64("rate", 100, "with --generate: Poisson arrival rate, connections per second")
	length := fs.Duration("length", time.Minute, "with --generate: how long arrivals go on")
	dist := fs.String("dist", "exponential", "with --generate: duration distribution: "+strings.Join(sim.Dists, ", "))
	mean := fs.Duration("mean", 10*time.Second, "with --generate: mean connection duration")
	shape := fs.Float64("shape", 0, "with --generate: lognormal sigma (default 1) or pareto alpha (default 2.5)")
	clients := fs.Int("clients", 1000, "with --generate: number of client addresses")
	proto := fs.String("proto", "tcp", "with --generate: tcp or udp")
	vip := fs.String("vip", "198.19.0.1:80", "with --generate: the virtual service address:port ([addr]:port for IPv6: IPv6 clients and real servers)")
	packets := fs.Int("packets", 2, "with --generate: packets per connection between its first and last")
	servers := fs.Int("servers", 4, "with --gen-config: number of real servers")
	weights := fs.String("weights", "1,2,3,4", "with --gen-config: real server weights (capacities), cycled")
	scheduler := fs.String("scheduler", "wlc", "with --gen-config: the service's scheduler")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *tracePath == "" {
		return errors.New("--trace is required")
	}
	if *generate {
		if *seed == 0 && !fs.Changed("seed") {
			*seed = uint64(time.Now().UnixNano())
		}
		w := sim.Workload{Seed: *seed, Length: *length, Rate: *rate, Dist: *dist, MeanDuration: *mean, Shape: *shape,
			Clients: *clients, Proto: *proto, Packets: *packets, Servers: *servers, Scheduler: *scheduler}
		var err error
		if w.VIP, err = simAddrPort(*vip); err != nil {
			return fmt.Errorf("--vip: %w", err)
		}
		for _, f := range strings.Split(*weights, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("--weights %q: %q is not an integer", *weights, f)
			}
			w.Weights = append(w.Weights, n)
		}
		fmt.Fprintf(os.Stderr, "afvs-lab sim: generating with seed %d\n", *seed)
		if err := simWriteFile(*tracePath, func(f io.Writer) error {
			st, err := sim.Generate(f, w)
			if err == nil {
				fmt.Fprintf(os.Stderr, "afvs-lab sim: %s: %d connections, %d lines\n", *tracePath, st.Conns, st.Lines)
			}
			return err
		}); err != nil {
			return err
		}
		if *genConfig != "" {
			if err := simWriteFile(*genConfig, func(f io.Writer) error { return sim.WriteConfig(f, w) }); err != nil {
				return err
			}
			if *cfgPath == "" {
				*cfgPath = *genConfig
			}
		}
		if *outPath == "" {
			return nil
		}
	}
	if *outPath == "" {
		return errors.New("--out is required")
	}
	cfg, err := configfile.Load(*cfgPath, nil)
	if err != nil {
		return err
	}
	t, err := cfg.VS()
	if err != nil {
		return err
	}
	if *capacity < 1 || *capacity > conntrack.MaxCapacity {
		return fmt.Errorf("--capacity %d: must be 1..%d", *capacity, conntrack.MaxCapacity)
	}
	if *templates < 1 || *templates > conntrack.MaxTemplates {
		return fmt.Errorf("--templates %d: must be 1..%d", *templates, conntrack.MaxTemplates)
	}
	sys := cfg.Sysctls()
	opt := sim.Options{Capacity: *capacity, Templates: *templates, Seed: *seed, Sysctls: &sys}
	opt.Timeouts = conntrack.DefaultTimeouts()
	if cfg.Timeouts.TCP > 0 {
		opt.Timeouts.Established = cfg.Timeouts.TCP
	}
	if cfg.Timeouts.TCPFin > 0 {
		opt.Timeouts.FinWait = cfg.Timeouts.TCPFin
	}
	if cfg.Timeouts.UDP > 0 {
		opt.Timeouts.UDP = cfg.Timeouts.UDP
	}
	in, err := os.Open(*tracePath)
	if err != nil {
		return err
	}
	defer in.Close()
	var sum *sim.Summary
	start := time.Now()
	if err := simWriteFile(*outPath, func(f io.Writer) error {
		var err error
		sum, err = sim.Run(t, in, f, opt)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "afvs-lab sim: %d events (%d ms of trace) in %v\n", sum.Packets+sum.Admin, sum.End-sum.Start, time.Since(start).Round(time.Millisecond))
	for _, r := range []string{"table_full", "template_full"} {
		if n := sum.Drops[r]; n > 0 {
			fmt.Fprintf(os.Stderr, "afvs-lab sim: warning: %d packets dropped as %s: raise --capacity or --templates\n", n, r)
		}
	}
	switch *summaryPath {
	case "":
	case "-":
		if err := sum.WriteText(os.Stdout); err != nil {
			return err
		}
	default:
		if err := simWriteFile(*summaryPath, sum.WriteText); err != nil {
			return err
		}
	}
	if *plotPath != "" {
		if err := simWriteFile(*plotPath, sum.WritePlot); err != nil {
			return err
		}
	}
	return nil
}

func simAddrPort(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" || ap.Addr().Is4In6() || ap.Port() == 0 {
		return ap, fmt.Errorf("%q: must be IPv4:port or [IPv6]:port with a non-zero port", s)
	}
	return ap, nil
}

// simWriteFile creates path, lets fn fill it, and reports the first error,
// including the one from closing.
func simWriteFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
