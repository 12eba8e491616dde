package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLabCommandsPointAtAfvsLab: the lab tools left the daemon's binary;
// asking afvs for one names the afvs-lab command instead of only saying
// "unknown command".
func TestLabCommandsPointAtAfvsLab(t *testing.T) {
	for _, c := range []string{"demo", "bench", "sim", "replay"} {
		var out bytes.Buffer
		code := dispatch([]string{c, "--help"}, &out)
		if code != 2 || !strings.Contains(out.String(), `run "afvs-lab `+c+`"`) || strings.Contains(out.String(), "unknown command") {
			t.Errorf("afvs %s: exit %d, %q; want 2 and a pointer to afvs-lab %s", c, code, out.String(), c)
		}
	}
	var out bytes.Buffer
	if code := dispatch([]string{"frobnicate"}, &out); code != 2 || !strings.Contains(out.String(), `unknown command "frobnicate"`) ||
		!strings.Contains(out.String(), "afvs-lab") {
		t.Errorf("afvs frobnicate: exit %d, %q; want the usage, which names afvs-lab", code, out.String())
	}
}

// TestHelpListsCommands: "afvs --help" and "afvs -h" list the commands
// (check, reload, realserver, not only run's flags), while "afvs run
// --help" still prints run's flags.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out bytes.Buffer
		code := dispatch(args, &out)
		for _, want := range []string{"commands:", "check", "reload", "realserver", "afvs-lab"} {
			if code != 0 || !strings.Contains(out.String(), want) {
				t.Errorf("afvs %v: exit %d, %q; want 0 and the command list (%q)", args, code, out.String(), want)
			}
		}
	}
	var out bytes.Buffer
	if code := dispatch([]string{"run", "--help"}, &out); code != 0 || strings.Contains(out.String(), "commands:") {
		t.Errorf("afvs run --help: exit %d, %q; want 0 and run's flags, not the command list", code, out.String())
	}
}
