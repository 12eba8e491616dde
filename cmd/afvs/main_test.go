package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLabCommandsPointAtAfvsLab: the lab tools left the daemon's binary;
// asking afvs for one runs afvs-lab with the same command and arguments,
// and where that fails names the afvs-lab command instead of only saying
// "unknown command".
func TestLabCommandsPointAtAfvsLab(t *testing.T) {
	var argv []string
	old := execLab
	t.Cleanup(func() { execLab = old })
	execLab = func(path string, a []string, _ []string) error {
		argv = a
		return errors.New("exec refused by the test")
	}
	t.Setenv("PATH", t.TempDir()) // no afvs-lab anywhere
	for _, c := range []string{"demo", "bench", "sim", "replay"} {
		var out bytes.Buffer
		code := dispatch([]string{c, "--help"}, &out)
		if code != 2 || !strings.Contains(out.String(), `run "afvs-lab `+c+`"`) || !strings.Contains(out.String(), "neither next to afvs nor on $PATH") || strings.Contains(out.String(), "unknown command") {
			t.Errorf("afvs %s: exit %d, %q; want 2 and a pointer to afvs-lab %s", c, code, out.String(), c)
		}
	}
	if argv != nil {
		t.Errorf("exec'd %q with no afvs-lab to find", argv)
	}
	// An afvs-lab on $PATH is run with the command and its arguments.
	dir := t.TempDir()
	lab := filepath.Join(dir, "afvs-lab")
	if err := os.WriteFile(lab, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	var out bytes.Buffer
	code := dispatch([]string{"demo", "--ha", "--rounds", "2"}, &out)
	if want := []string{lab, "demo", "--ha", "--rounds", "2"}; !slices.Equal(argv, want) {
		t.Errorf("afvs demo --ha --rounds 2 exec'd %q, want %q", argv, want)
	}
	if code != 2 || !strings.Contains(out.String(), "exec refused by the test") {
		t.Errorf("a failed exec: exit %d, %q; want 2 and the error", code, out.String())
	}
	out.Reset()
	if code := dispatch([]string{"frobnicate"}, &out); code != 2 || !strings.Contains(out.String(), `unknown command "frobnicate"`) ||
		!strings.Contains(out.String(), "afvs-lab") {
		t.Errorf("afvs frobnicate: exit %d, %q; want the usage, which names afvs-lab", code, out.String())
	}
}

// TestAfvsDemoRunsAfvsLab: the built afvs binary, with an afvs-lab next to
// it, replaces itself with afvs-lab: "afvs demo --ha" is "afvs-lab demo
// --ha", its output and exit status afvs-lab's.
func TestAfvsDemoRunsAfvsLab(t *testing.T) {
	afvs, _ := binaries(t)
	dir := t.TempDir()
	self := filepath.Join(dir, "afvs")
	data, err := os.ReadFile(afvs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// The stand-in afvs-lab prints its arguments and exits 7.
	if err := os.WriteFile(filepath.Join(dir, "afvs-lab"), []byte("#!/bin/sh\necho \"lab: $*\"\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "demo", "--ha", "--rounds", "2")
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || strings.TrimSpace(string(out)) != "lab: demo --ha --rounds 2" {
		t.Errorf("afvs demo --ha --rounds 2: %v, %q; want afvs-lab's output and exit 7", err, out)
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
