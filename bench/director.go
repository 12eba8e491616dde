package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/afvs/afvs/control"
)

// director is an afvs run process in the topology's director namespace.
type director struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	log    *lockedBuffer
	exited chan struct{}
}

// directorConfig is the afvs config for one forwarding mode: one UDP
// service on the VIP with the sink as its only real server. afvs finds
// the egress interface (eth1) through the route to the sink, and the
// sink's MAC through the permanent neighbour entry.
func directorConfig(mode, socket string, flows int) string {
	capacity := 1 << 16
	for capacity < 2*flows {
		capacity <<= 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "interfaces: [%s]\nxdp_mode: auto\n", ingressName)
	// Each namespace has its own loopback, so the default metrics port
	// cannot clash with another afvs.
	fmt.Fprintf(&b, "metrics:\n  address: 127.0.0.1:9469\ncontrol:\n  socket: %s\nlog:\n  level: warn\n", socket)
	fmt.Fprintf(&b, "table:\n  capacity: %d\n", capacity)
	fmt.Fprintf(&b, "services:\n  - proto: udp\n    address: %s\n    port: %d\n    scheduler: rr\n    forward: %s\n", VIP, VIPPort, mode)
	fmt.Fprintf(&b, "    reals:\n      - {address: %s, weight: 1}\n", SinkAddr)
	return b.String()
}

// startDirector writes the config and starts afvs, returning once its
// control socket answers.
func startDirector(t *topology, afvs, mode string, flows int) (d *director, err error) {
	tmp, err := os.MkdirTemp("", "afvs-bench-")
	if err != nil {
		return nil, err
	}
	d = &director{dir: tmp, socket: filepath.Join(tmp, "afvs.sock"), log: &lockedBuffer{}, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	cfg := filepath.Join(tmp, "afvs.yaml")
	if err := os.WriteFile(cfg, []byte(directorConfig(mode, d.socket, flows)), 0o644); err != nil {
		return d, err
	}
	d.cmd = t.dir.Command(afvs, "run", "--config", cfg)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		return d, fmt.Errorf("start %s: %w", afvs, err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	c := control.NewClient(d.socket)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-d.exited:
			return d, fmt.Errorf("afvs exited during start-up: %s", d.log.tail())
		default:
		}
		if _, err := c.Status(); err == nil {
			return d, nil
		}
	}
	return d, fmt.Errorf("afvs did not open its control socket within 20s: %s", d.log.tail())
}

// status reads the director's counters.
func (d *director) status() (control.Status, error) {
	return control.NewClient(d.socket).Status()
}

// stop sends SIGTERM, waits up to five seconds, then kills; it removes the
// scratch directory either way.
func (d *director) stop() error {
	defer os.RemoveAll(d.dir)
	if os.Getenv("AFVS_BENCH_LOG") != "" {
		fmt.Fprintln(os.Stderr, d.log.tail())
	}
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	// The command is "ip netns exec ... afvs", which execs afvs in place, so
	// the signal reaches afvs itself.
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	d.cmd.Process.Kill()
	<-d.exited
	return errors.New("afvs did not stop within 5s of SIGTERM; killed")
}

// lockedBuffer collects afvs's output from the exec package's copier
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail is the last part of the output, enough to show why afvs failed.
func (l *lockedBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.b.String())
	if len(s) > 20000 {
		s = "..." + s[len(s)-20000:]
	}
	return s
}
