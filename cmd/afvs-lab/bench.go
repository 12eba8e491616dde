package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/bench"
)

// runBench is "afvs bench": the packet-rate benchmark in namespaces. It runs
// this very binary as the director for the dr and tun scenarios.
func runBench(args []string) error {
	fs := pflag.NewFlagSet("afvs bench", pflag.ContinueOnError)
	duration := fs.Duration("duration", 3*time.Second, "how long the generator sends in each scenario")
	flows := fs.Int("flows", 1024, "UDP source ports the generator cycles through (one flow each)")
	rounds := fs.Int("rounds", 1, "run every scenario this many times, interleaved, and report the median")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	scenarios := fs.String("scenarios", "all", "comma-separated scenarios: offered, baseline, dr, tun (or all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: bench takes flags only", fs.Arg(0))
	}
	sc, err := bench.ParseScenarios(*scenarios)
	if err != nil {
		return fmt.Errorf("--scenarios: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the afvs binary for the director scenarios: %w", err)
	}
	rep, err := bench.Run(bench.Options{Duration: *duration, Flows: *flows, Scenarios: sc, Rounds: *rounds, AFVS: self, Log: os.Stderr})
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
	if rep.Failed() {
		return fmt.Errorf("some scenarios failed; see the report")
	}
	return nil
}
