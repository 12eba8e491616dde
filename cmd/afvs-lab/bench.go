package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/bench"
	"github.com/afvs/afvs/internal/testnet"
)

// runBench is "afvs-lab bench": the packet-rate benchmark in namespaces. It
// runs the afvs daemon binary as the director for the dr and tun scenarios.
func runBench(args []string) error {
	fs := pflag.NewFlagSet("afvs-lab bench", pflag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "how long the generator sends in each scenario")
	flows := fs.Int("flows", 1024, "flows the generator cycles through, up to 16M (UDP source ports, then source addresses); each gets a frame before the measurement")
	rounds := fs.Int("rounds", 1, "run every scenario this many times, interleaved, and report the median")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	plotFile := fs.String("plot", "", "also draw the rates and latency percentiles as a chart in this PNG file")
	threaded := fs.Bool("threaded", false, "also run every rate scenario with each receive path on a CPU of its own (threaded NAPI, the generator pinned), reported as SCENARIO@threaded")
	afvs := fs.String("afvs", "", "the afvs daemon binary for the scenarios that run it (default: afvs next to afvs-lab, else on $PATH)")
	scenarios := fs.String("scenarios", "all", "comma-separated scenarios: offered, offered6, baseline, baseline6, dr, dr6, tun, tun6, nat, nat-reply, dr-2q, kernel-xdp-dr, kernel-xdp-tun, new-flows, latency (or all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: bench takes flags only", fs.Arg(0))
	}
	// A chart that cannot be written is refused before the long run.
	if *plotFile != "" {
		if !strings.HasSuffix(*plotFile, ".png") {
			return fmt.Errorf("--plot %s: the chart is a PNG: the file name must end in .png", *plotFile)
		}
		if fi, err := os.Stat(filepath.Dir(*plotFile)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--plot %s: directory %s does not exist", *plotFile, filepath.Dir(*plotFile))
		}
	}
	sc, err := bench.ParseScenarios(*scenarios)
	if err != nil {
		return fmt.Errorf("--scenarios: %w", err)
	}
	var daemon string
	for _, s := range sc {
		if s.NeedsAFVS() {
			if daemon, err = testnet.DaemonBinary(*afvs); err != nil {
				return fmt.Errorf("scenario %s: %w", s, err)
			}
			break
		}
	}
	rep, err := bench.Run(bench.Options{Duration: *duration, Flows: *flows, Scenarios: sc, Rounds: *rounds, AFVS: daemon, Log: os.Stderr, Threaded: *threaded})
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		return err
	}
	if *plotFile != "" {
		if err := writePlot(rep, *plotFile); err != nil {
			return err
		}
	}
	if rep.Failed() {
		return fmt.Errorf("some scenarios failed; see the report")
	}
	return nil
}

// writePlot draws the report's chart into path.
func writePlot(rep *bench.Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := rep.WritePlot(f); err != nil {
		f.Close()
		return fmt.Errorf("--plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--plot %s: %w", path, err)
	}
	return nil
}
