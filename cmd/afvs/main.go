// Command afvs is the AF_XDP Virtual Server daemon.
//
//	afvs [run] [--config FILE]     run the director (built-in default config without --config)
//	afvs check --config FILE       validate a config without touching the network
//	afvs reload                    ask the running daemon to re-read its config
//	afvs realserver ...            prepare a real server (VIP on lo, ARP sysctls, tunnel decap, NAT gateway)
//
// The lab and research tools (demo, bench, sim, replay) are a separate
// command, afvs-lab, so that the daemon links none of their dependencies;
// asked for one of them ("afvs demo --ha"), afvs runs afvs-lab in its place,
// and says where to get it if it is not there.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

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
		{"realserver", "set up a real server: VIP on lo, ARP sysctls, tunnel decapsulation, NAT gateway", runRealServer},
	}
}

// labCommands are afvs-lab's; afvs runs afvs-lab for them.
var labCommands = []string{"demo", "bench", "sim", "replay"}

// execLab replaces this process with afvs-lab (syscall.Exec; tests
// replace it).
var execLab = syscall.Exec

// findLab finds the afvs-lab binary: next to this one (as make build
// puts them), else on $PATH.
func findLab() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "afvs-lab")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("afvs-lab")
	if err != nil {
		return "", errors.New("afvs-lab is neither next to afvs nor on $PATH")
	}
	return p, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: afvs [command] [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'afvs COMMAND --help' for a command's flags.\nThe lab tools (%s) are afvs-lab's commands; afvs runs afvs-lab for them.\n", strings.Join(labCommands, ", "))
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stderr))
}

// dispatch runs the command args name and returns the exit status.
func dispatch(args []string, stderr io.Writer) int {
	// "afvs help", "afvs -h" and "afvs --help" list the commands; with a
	// command ("afvs run --help") its flags print instead.
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		args = []string{"help"}
	}
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(stderr)
		return 0
	}
	for _, c := range commands {
		if c.name == name {
			if err := c.run(args); err != nil {
				if errors.Is(err, pflag.ErrHelp) {
					return 0
				}
				fmt.Fprintf(stderr, "afvs %s: %v\n", name, err)
				return 1
			}
			return 0
		}
	}
	if slices.Contains(labCommands, name) {
		// "afvs demo --ha" is "afvs-lab demo --ha": run afvs-lab in this
		// process's place, found next to this binary or on $PATH.
		lab, err := findLab()
		if err == nil {
			err = execLab(lab, append([]string{lab, name}, args...), os.Environ())
		}
		fmt.Fprintf(stderr, "afvs: %q is a lab tool, afvs-lab's: %v (make build puts bin/afvs-lab next to bin/afvs; or run \"afvs-lab %s\")\n", name, err, name)
		return 2
	}
	fmt.Fprintf(stderr, "afvs: unknown command %q\n", name)
	usage(stderr)
	return 2
}
