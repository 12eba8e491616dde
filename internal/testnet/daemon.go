package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/afvs/afvs/control/api"
)

// LogBuffer collects a process's output from the exec package's copier
// goroutines and reads safely while they write.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// DaemonBinary finds the afvs daemon binary a lab runs as its director and
// real servers (the lab tools live in a separate binary, afvs-lab): path
// itself if it is not empty; else "afvs" in the directory of the running
// executable, where `make build` puts afvs and afvs-lab side by side; else
// "afvs" on $PATH. The result must be an executable regular file.
func DaemonBinary(path string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	return daemonBinary(path, self)
}

func daemonBinary(path, self string) (string, error) {
	if path != "" {
		if err := isExecutable(path); err != nil {
			return "", fmt.Errorf("afvs binary %s: %w", path, err)
		}
		return path, nil
	}
	var tried []string
	if self != "" {
		sibling := filepath.Join(filepath.Dir(self), "afvs")
		if isExecutable(sibling) == nil {
			return sibling, nil
		}
		tried = append(tried, sibling)
	}
	if p, err := exec.LookPath("afvs"); err == nil {
		return p, nil
	}
	tried = append(tried, "afvs on $PATH")
	return "", fmt.Errorf("no afvs daemon binary found (tried %s); build it with `make build` or name it with --afvs", strings.Join(tried, ", "))
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not executable")
	}
	return nil
}

// Daemon is an `afvs run` process in a namespace of a Net, reachable on
// its control socket. The Net kills it on Close if it still runs.
type Daemon struct {
	Socket string
	Log    LogBuffer
	proc   *os.Process
	exited <-chan struct{}
}

// StartDaemon runs "afvs args..." in ns and returns once the control API
// answers on socket and the start-up log has arrived in Log (so the
// daemon must log at level info or finer), or with the daemon's output if
// it exits or stays silent for 20 seconds.
func StartDaemon(ns *NS, afvs, socket string, args ...string) (*Daemon, error) {
	d := &Daemon{Socket: socket}
	cmd := ns.Command(afvs, args...)
	cmd.Stdout, cmd.Stderr = &d.Log, &d.Log
	exited, err := ns.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", afvs, err)
	}
	d.proc, d.exited = cmd.Process, exited
	c := api.NewClient(socket)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return d, fmt.Errorf("afvs exited during start-up:\n%s", d.Log.String())
		default:
		}
		// The log reaches d.Log through a pipe and a copying goroutine,
		// so the socket may answer before the start-up lines arrive;
		// "afvs running" is the last of them, written once the workers
		// run. Tests read the log right after StartDaemon returns.
		if _, err := c.Status(); err == nil && strings.Contains(d.Log.String(), "afvs running") {
			return d, nil
		}
	}
	_ = d.Stop(syscall.SIGKILL)
	return d, fmt.Errorf("afvs did not open its control socket within 20s:\n%s", d.Log.String())
}

// Process is the afvs process ("ip netns exec" execs afvs in place, so
// signals reach afvs itself).
func (d *Daemon) Process() *os.Process { return d.proc }

// Exited is closed once the process has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Stop sends sig and waits up to five seconds for the exit; after that it
// kills the process and says so.
func (d *Daemon) Stop(sig os.Signal) error {
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.proc.Signal(sig); err != nil {
		return err
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = d.proc.Kill()
	<-d.exited
	return fmt.Errorf("afvs (pid %d) still running 5s after %v; killed", d.proc.Pid, sig)
}
