package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// TestSignalsDuringStartup sends SIGHUP while afvs is still setting up
// (after it logs "afvs starting", before "afvs running"): the reload
// waits for the main loop instead of ending the half-set-up process, and
// a SIGTERM afterwards still shuts it down cleanly.
func TestSignalsDuringStartup(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", NoDirector: true})
	writeLabConfig(t, lab, serviceConfig(lab, "wrr", 1, 1, 1))
	var log testnet.LogBuffer
	cmd := lab.Director.Command(lab.Opt.AFVS, "run", "--config", lab.ConfigPath)
	cmd.Stdout, cmd.Stderr = &log, &log
	exited, err := lab.Director.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	wait := func(what string, ok func(string) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if ok(log.String()) {
				return
			}
			select {
			case <-exited:
				t.Fatalf("afvs exited waiting for %s:\n%s", what, log.String())
			default:
			}
		}
		t.Fatalf("afvs did not log %s within 20s:\n%s", what, log.String())
	}
	wait(`"afvs starting"`, func(s string) bool { return strings.Contains(s, "afvs starting") })
	if strings.Contains(log.String(), "afvs running") {
		t.Logf("afvs was already running when the test signalled it (a slow machine): only the reload is tested")
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait(`"afvs running" and then "reloaded configuration"`, func(s string) bool {
		r := strings.Index(s, "afvs running")
		return r >= 0 && strings.Contains(s[r:], "reloaded configuration")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("afvs still running 10s after SIGTERM:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "shutting down") {
		t.Errorf("afvs exited without shutting down:\n%s", log.String())
	}
}
