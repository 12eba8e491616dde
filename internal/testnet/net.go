package testnet

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/afvs/afvs/dataplane/nic"
)

var seq atomic.Int64

// Net is a set of namespaces that live and die together.
type Net struct {
	Prefix string
	mu     sync.Mutex
	nss    []*NS
	procs  []proc
}

// proc is a started command and the channel closed when its single Wait
// (run by the Net) returns.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// NS is one network namespace of a Net.
type NS struct {
	Name string // full name under /run/netns
	Net  *Net
}

// New returns an empty Net with a unique prefix.
func New() *Net {
	return &Net{Prefix: fmt.Sprintf("afvs-%d-%d", os.Getpid(), seq.Add(1))}
}

// Available reports why namespaces cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs iproute2's ip command: %w", err)
	}
	return nil
}

// Run runs ip(8)-style commands and returns combined output on failure.
func Run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Output runs a command and returns its standard output.
func Output(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out), nil
}

// NS creates a namespace called <prefix>-<name> with loopback up.
func (n *Net) NS(name string) (*NS, error) {
	full := n.Prefix + "-" + name
	if err := Run("ip", "netns", "add", full); err != nil {
		return nil, err
	}
	ns := &NS{Name: full, Net: n}
	n.mu.Lock()
	n.nss = append(n.nss, ns)
	n.mu.Unlock()
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// IP runs "ip -n <ns> args...".
func (ns *NS) IP(args ...string) error {
	return Run(append([]string{"ip", "-n", ns.Name}, args...)...)
}

// Sysctl sets a sysctl inside the namespace.
func (ns *NS) Sysctl(key, value string) error {
	return ns.Do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Start starts a long-running command in the namespace; Close kills it.
// The Net waits for the command; the returned channel closes when it has
// exited (callers must not call cmd.Wait themselves).
func (ns *NS) Start(cmd *exec.Cmd) (<-chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	ns.Net.mu.Lock()
	ns.Net.procs = append(ns.Net.procs, p)
	ns.Net.mu.Unlock()
	return p.exited, nil
}

// Do runs fn on a goroutine-locked OS thread that has entered the
// namespace. Sockets fn creates belong to the namespace and keep working
// after Do returns.
func (ns *NS) Do(fn func() error) error {
	return nic.DoIn(ns.Name, fn)
}

// Veth links namespace a (interface aName) with b (bName). Either may be a
// bridge's namespace; the caller attaches ends to bridges with Master.
func Veth(a *NS, aName string, b *NS, bName string) error {
	return VethQueues(a, aName, b, bName, 1)
}

// VethQueues is Veth with n TX and RX queues on each end, so that several
// AF_XDP workers can serve one interface.
func VethQueues(a *NS, aName string, b *NS, bName string, n int) error {
	tmp := fmt.Sprintf("afv%d", seq.Add(1))
	q := []string{"numtxqueues", fmt.Sprint(n), "numrxqueues", fmt.Sprint(n)}
	args := append([]string{"link", "add", tmp}, q...)
	args = append(args, "type", "veth", "peer", "name", bName, "netns", b.Name)
	args = append(args, q...)
	if err := a.IP(args...); err != nil {
		return err
	}
	if err := a.IP("link", "set", tmp, "name", aName); err != nil {
		return err
	}
	if err := a.IP("link", "set", aName, "up"); err != nil {
		return err
	}
	return b.IP("link", "set", bName, "up")
}

// Close kills started processes and deletes every namespace. It reports
// the first error but always tries everything.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.procs {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	n.procs = nil
	var first error
	for i := len(n.nss) - 1; i >= 0; i-- {
		if err := Run("ip", "netns", "delete", n.nss[i].Name); err != nil && first == nil {
			first = err
		}
	}
	n.nss = nil
	return first
}

// Leftovers lists namespaces under /run/netns that start with prefix, for
// tests that prove cleanup.
func Leftovers(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// ReapStale deletes namespaces that an earlier run of a test, the demo or
// the benchmark left behind when it was killed before it could clean up:
// names "<prefix>-<pid>-..." (prefix afvs or afvsb) whose pid is no longer
// running. It returns the names it removed.
func ReapStale() []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		parts := strings.SplitN(e.Name(), "-", 3)
		if len(parts) < 3 || (parts[0] != "afvs" && parts[0] != "afvsb") {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // still running: not ours to touch
		}
		if Run("ip", "netns", "delete", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out
}
