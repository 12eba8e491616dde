// Command afvs is the AF_XDP Virtual Server daemon and its tools.
//
//	afvs [run] [--config FILE]     run the director (built-in default config without --config)
//	afvs check --config FILE       validate a config without touching the network
//	afvs realserver ...            prepare a real server (VIP on lo, ARP sysctls, IPIP decap)
//	afvs replay ...                push a pcap through the dataplane offline
//	afvs sim ...                   scheduler simulator on traces or generated workloads
//	afvs bench ...                 packet-rate benchmark in namespaces
//	afvs demo                      build a namespace lab and show VS/DR and VS/TUN working
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

type command struct {
	name, summary string
	run           func(args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"run", "run the director (the default command)", runDaemon},
		{"check", "validate a config file without touching the network", runCheck},
		{"reload", "ask the running daemon to re-read its config", runReload},
		{"realserver", "set up a real server: VIP on lo, ARP sysctls, IPIP decapsulation", runRealServer},
		{"replay", "push a pcap through parse, conntrack, sched and encap offline", runReplay},
		{"sim", "run a connection trace through the schedulers and the connection table", runSim},
		{"bench", "measure packet rates in namespaces: afvs DR/TUN against baselines", runBench},
		{"demo", "build a lab of namespaces and show VS/DR and VS/TUN forwarding", runDemo},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: afvs [command] [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'afvs COMMAND --help' for a command's flags.\n")
}

func main() {
	args := os.Args[1:]
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" || (len(args) == 0 && name == "-h") {
		usage()
		return
	}
	for _, c := range commands {
		if c.name == name {
			if err := c.run(args); err != nil {
				if errors.Is(err, pflag.ErrHelp) {
					return
				}
				fmt.Fprintf(os.Stderr, "afvs %s: %v\n", name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "afvs: unknown command %q\n", name)
	usage()
	os.Exit(2)
}
