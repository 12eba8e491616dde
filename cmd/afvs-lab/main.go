// Command afvs-lab holds afvs's research and lab tools, kept out of the
// daemon's binary so that the daemon links none of their dependencies
// (the namespace lab, the benchmark harness, the simulator's plots, pcap
// handling):
//
//	afvs-lab demo                  build a namespace lab and show VS/DR (IPv4, IPv6), VS/TUN and VS/NAT working
//	afvs-lab bench ...             packet-rate benchmark in namespaces
//	afvs-lab sim ...               scheduler simulator on traces or generated workloads
//	afvs-lab replay ...            push a pcap through the dataplane offline
//
// demo and bench run the daemon binary, afvs, as their director and real
// servers: the one named by --afvs, else the afvs next to afvs-lab, else
// the one on $PATH.
package main

import (
	"errors"
	"fmt"
	"io"
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
		{"demo", "build a lab of namespaces and show VS/DR (IPv4, IPv6), VS/TUN and VS/NAT", runDemo},
		{"bench", "measure packet rates in namespaces: afvs DR/TUN against baselines", runBench},
		{"sim", "run a connection trace through the schedulers and the connection table", runSim},
		{"replay", "push a pcap through parse, conntrack, sched and encap offline", runReplay},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: afvs-lab command [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'afvs-lab COMMAND --help' for a command's flags. The daemon is afvs.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name, args := args[0], args[1:]
	for _, c := range commands {
		if c.name == name {
			if err := c.run(args); err != nil {
				if errors.Is(err, pflag.ErrHelp) {
					return 0
				}
				fmt.Fprintf(stderr, "afvs-lab %s: %v\n", name, err)
				return 1
			}
			return 0
		}
	}
	switch name {
	case "run", "check", "reload", "realserver":
		fmt.Fprintf(stderr, "afvs-lab: %q is a daemon command: run \"afvs %s\"\n", name, name)
	default:
		fmt.Fprintf(stderr, "afvs-lab: unknown command %q\n", name)
		usage(stderr)
	}
	return 2
}
