package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/deploy/keepalived"
)

// HAOptions shape an HALab.
type HAOptions struct {
	AFVS       string // afvs binary: the directors and the real servers run it
	AFVSADM    string // afvsadm binary the notify script runs; default: afvsadm next to AFVS
	Keepalived string // keepalived binary; default: keepalived on $PATH
	Scheduler  string // both directors' scheduler; default mh
	SloppyTCP  bool   // ipvs.sloppy_tcp: 1 on both directors
	Sync       bool   // the notify script runs afvs's connection sync daemon on eth0
	SyncID     int    // the pair's sync ID; default 51
	// SyncOptions are further afvsadm options the notify script passes
	// to --start-daemon (its SYNC_OPTIONS), e.g. "--mcast-group ff02::8848".
	SyncOptions string
}

// HALab is an HA pair of directors on one LAN with the client and three
// DR real servers, all on one bridge in 198.18.0.0/24:
//
//	client 198.18.0.10        routes the VIP 198.19.0.1 via 198.18.0.1
//	director A 198.18.0.2     afvs + keepalived with keepalived-master.conf
//	director B 198.18.0.3     afvs + keepalived with keepalived-backup.conf
//	rs1..rs3 198.18.0.11-13   afvs realserver (VIP on lo), HTTP on port 80
//
// keepalived runs the shipped configs of deploy/keepalived, with only the
// scripts' directory changed, and moves 198.18.0.1 between the
// directors; the notify script (also the shipped one) switches the sync
// daemon's role. A is started first and becomes master; B joins as
// backup.
type HALab struct {
	Net            *Net
	Opt            HAOptions
	Switch, Client *NS
	Directors      []*HADirector // A (priority 150), then B (priority 100)
	Reals          []*NS
	RealAddrs      []netip.Addr
	Names          []string
	VIP            netip.Addr
	Port           uint16
	NextHop        netip.Addr // keepalived's virtual_ipaddress, the VIP's next hop
	ClientAddr     netip.Addr
	Dir            string

	nextPort atomic.Uint32
}

// HADirector is one director of an HALab.
type HADirector struct {
	Name           string // "A" or "B"
	NS             *NS
	Addr           netip.Addr
	Dir            string // this director's scratch directory
	ConfigPath     string // afvs's config
	Socket         string // afvs's control socket
	KeepalivedConf string
	NotifyLog      string // where the notify script logs
	SwitchPort     string // its port on the bridge, in the switch namespace

	lab *HALab
	mu  sync.Mutex
	afv *Daemon
	ka  *kaProc
}

// kaProc is a running keepalived: the parent, its VRRP child and the
// notify scripts they run share the process group pgid.
type kaProc struct {
	pgid   int
	exited <-chan struct{}
	log    *LogBuffer
}

// haInstance is the VRRP instance name of the shipped configs.
const haInstance = "AFVS"

// NewHALab builds the network, starts the real servers, afvs on both
// directors and keepalived on A, waits until A holds the next hop, then
// starts keepalived on B and waits until it is backup. On error
// everything made so far is removed.
func NewHALab(o HAOptions) (h *HALab, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ReapStale()
	if o.Scheduler == "" {
		o.Scheduler = "mh"
	}
	if o.SyncID == 0 {
		o.SyncID = 51
	}
	if o.Keepalived == "" {
		p, err := exec.LookPath("keepalived")
		if err != nil {
			return nil, fmt.Errorf("needs Debian's keepalived (apt-get install keepalived; `make deps` does): %w", err)
		}
		o.Keepalived = p
	}
	if o.AFVSADM == "" {
		o.AFVSADM = filepath.Join(filepath.Dir(o.AFVS), "afvsadm")
	}
	if err := isExecutable(o.AFVSADM); err != nil {
		return nil, fmt.Errorf("afvsadm binary %s: %w", o.AFVSADM, err)
	}
	dir, err := os.MkdirTemp("", "afvs-ha-")
	if err != nil {
		return nil, err
	}
	lab := &HALab{Net: New(), Opt: o, VIP: netip.MustParseAddr("198.19.0.1"), Port: 80,
		NextHop: netip.MustParseAddr("198.18.0.1"), ClientAddr: netip.MustParseAddr("198.18.0.10"), Dir: dir}
	defer func() {
		if err != nil {
			lab.Close()
		}
	}()
	if err := lab.build(); err != nil {
		return lab, err
	}
	for i, d := range lab.Directors {
		if err := d.writeFiles([]string{keepalived.MasterConf, keepalived.BackupConf}[i]); err != nil {
			return lab, err
		}
		if err := d.StartAFVS(); err != nil {
			return lab, err
		}
	}
	a, b := lab.Directors[0], lab.Directors[1]
	if err := a.StartKeepalived(); err != nil {
		return lab, err
	}
	if err := a.WaitOwns(true, 10*time.Second); err != nil {
		return lab, err
	}
	if err := b.StartKeepalived(); err != nil {
		return lab, err
	}
	if err := b.WaitNotify(0, haInstance+" is BACKUP", 10*time.Second); err != nil {
		return lab, err
	}
	if o.Sync {
		if err := a.WaitSyncDaemons("master"); err != nil {
			return lab, err
		}
		if err := b.WaitSyncDaemons("backup"); err != nil {
			return lab, err
		}
	}
	return lab, nil
}

// WaitSyncDaemons waits until the director's afvs runs exactly the sync
// daemon of role (the notify scripts may still be switching).
func (d *HADirector) WaitSyncDaemons(role string) error {
	var got []api.SyncDaemon
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		st, err := d.Control().Status()
		if err != nil {
			return err
		}
		got = st.Sync.Daemons
		if len(got) == 1 && got[0].State == role {
			return nil
		}
	}
	return fmt.Errorf("director %s runs sync daemons %+v after 10s; want the %s one alone; notify log:\n%s", d.Name, got, role, d.Notifications())
}

// WaitSyncRole waits until the notify script has started the sync daemon
// in role (master or backup) after mark.
func (d *HADirector) WaitSyncRole(mark int, role string) error {
	opts := ""
	if d.lab.Opt.SyncOptions != "" {
		opts = " " + d.lab.Opt.SyncOptions
	}
	return d.WaitNotify(mark, fmt.Sprintf("afvsadm --start-daemon %s --mcast-interface eth0 --syncid %d%s: ok", role, d.lab.Opt.SyncID, opts), 15*time.Second)
}

func (h *HALab) build() error {
	var err error
	n := h.Net
	if h.Switch, err = n.NS("sw"); err != nil {
		return err
	}
	if err := h.Switch.IP("link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := h.Switch.IP("link", "set", "br0", "up"); err != nil {
		return err
	}
	port, lastPort := 0, ""
	plug := func(ns *NS, addr netip.Addr) error {
		port++
		p := fmt.Sprintf("p%d", port)
		if err := Veth(h.Switch, p, ns, "eth0"); err != nil {
			return err
		}
		if err := h.Switch.IP("link", "set", p, "master", "br0"); err != nil {
			return err
		}
		lastPort = p
		return ns.IP("addr", "add", addr.String()+"/24", "dev", "eth0")
	}
	if h.Client, err = n.NS("client"); err != nil {
		return err
	}
	if err := plug(h.Client, h.ClientAddr); err != nil {
		return err
	}
	if err := h.Client.IP("route", "add", h.VIP.String()+"/32", "via", h.NextHop.String()); err != nil {
		return err
	}
	for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter", "net.ipv4.conf.eth0.rp_filter"} {
		if err := h.Client.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	// veth TX checksum offload leaves partial TCP checksums that a
	// director intercepting frames with AF_XDP would forward broken.
	if err := h.Client.Do(func() error { return nic.DisableTxChecksum("eth0") }); err != nil {
		return err
	}
	for i, name := range []string{"A", "B"} {
		ns, err := n.NS("dir" + strings.ToLower(name))
		if err != nil {
			return err
		}
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + i)})
		if err := plug(ns, addr); err != nil {
			return err
		}
		ddir := filepath.Join(h.Dir, name)
		if err := os.Mkdir(ddir, 0o700); err != nil {
			return err
		}
		h.Directors = append(h.Directors, &HADirector{Name: name, NS: ns, Addr: addr, Dir: ddir, lab: h, SwitchPort: lastPort,
			ConfigPath: filepath.Join(ddir, "afvs.yaml"), Socket: filepath.Join(ddir, "afvs.sock"),
			KeepalivedConf: filepath.Join(ddir, "keepalived.conf"), NotifyLog: filepath.Join(ddir, "notify.log")})
	}
	for i := range 3 {
		name := fmt.Sprintf("rs%d", i+1)
		ns, err := n.NS(name)
		if err != nil {
			return err
		}
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(11 + i)})
		if err := plug(ns, addr); err != nil {
			return err
		}
		h.Reals = append(h.Reals, ns)
		h.RealAddrs = append(h.RealAddrs, addr)
		h.Names = append(h.Names, name)
		if _, _, err := startRealServer(ns, h.Opt.AFVS, realServerArgs("dr", h.VIP, h.Port, name), name); err != nil {
			return err
		}
	}
	return nil
}

// Config is the afvs config both directors run: the same service and
// real servers, so that a consistent scheduler picks the same server on
// either.
func (h *HALab) Config(socket string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interfaces: [eth0]\nmetrics:\n  address: 127.0.0.1:9469\ncontrol:\n  socket: %s\ntable:\n  capacity: 65536\n", socket)
	if h.Opt.SloppyTCP {
		b.WriteString("ipvs:\n  sloppy_tcp: 1\n")
	}
	fmt.Fprintf(&b, "services:\n  - proto: tcp\n    address: %s\n    port: %d\n    scheduler: %s\n    forward: dr\n    reals:\n", h.VIP, h.Port, h.Opt.Scheduler)
	for i, a := range h.RealAddrs {
		fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", a, i+1)
	}
	return b.String()
}

// writeFiles writes afvs's config and the shipped keepalived files: the
// config conf with the scripts' directory changed to this director's, and
// the scripts' settings pointed at this director's afvsadm, socket, log
// and lock.
func (d *HADirector) writeFiles(conf string) error {
	h := d.lab
	if err := os.WriteFile(d.ConfigPath, []byte(h.Config(d.Socket)), 0o600); err != nil {
		return err
	}
	ka, err := keepalived.Files.ReadFile(conf)
	if err != nil {
		return err
	}
	for _, p := range []string{keepalived.NotifyPath, keepalived.CheckPath} {
		if !strings.Contains(string(ka), p) {
			return fmt.Errorf("%s does not call %s", conf, p)
		}
	}
	if err := os.WriteFile(d.KeepalivedConf, []byte(strings.ReplaceAll(string(ka), keepalived.Dir, d.Dir+"/")), 0o600); err != nil {
		return err
	}
	for _, name := range []string{keepalived.Notify, keepalived.Check} {
		script, err := keepalived.Files.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.Dir, name), script, 0o700); err != nil {
			return err
		}
	}
	env, err := keepalived.Files.ReadFile(keepalived.NotifyEnv)
	if err != nil {
		return err
	}
	syncIf := ""
	if h.Opt.Sync {
		syncIf = "eth0"
	}
	settings := map[string]string{"AFVSADM": h.Opt.AFVSADM, "AFVS_SOCKET": d.Socket, "SYNC_INTERFACE": syncIf,
		"SYNC_ID": fmt.Sprint(h.Opt.SyncID), "SYNC_OPTIONS": h.Opt.SyncOptions, "LOG_FILE": d.NotifyLog, "LOCK_FILE": filepath.Join(d.Dir, "notify.lock")}
	out, err := setShellVars(string(env), settings)
	if err != nil {
		return fmt.Errorf("%s: %w", keepalived.NotifyEnv, err)
	}
	return os.WriteFile(filepath.Join(d.Dir, keepalived.NotifyEnv), []byte(out), 0o600)
}

// setShellVars replaces the values of the NAME=value lines of a shell
// fragment; each name must have a line.
func setShellVars(s string, vars map[string]string) (string, error) {
	lines := strings.Split(s, "\n")
	seen := map[string]bool{}
	for i, line := range lines {
		name, _, ok := strings.Cut(line, "=")
		if v, want := vars[name]; ok && want {
			lines[i] = name + "='" + v + "'"
			seen[name] = true
		}
	}
	for name := range vars {
		if !seen[name] {
			return "", fmt.Errorf("no %s= line", name)
		}
	}
	return strings.Join(lines, "\n"), nil
}

// StartAFVS starts afvs on the director and waits for its control socket.
func (d *HADirector) StartAFVS() error {
	dm, err := StartDaemon(d.NS, d.lab.Opt.AFVS, d.Socket, "run", "--config", d.ConfigPath)
	d.mu.Lock()
	d.afv = dm
	d.mu.Unlock()
	return err
}

// StartKeepalived starts keepalived (VRRP only, in the foreground,
// logging to KeepalivedLog) in its own process group.
func (d *HADirector) StartKeepalived() error {
	cmd := d.NS.Command(d.lab.Opt.Keepalived, "--vrrp", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
		"-f", d.KeepalivedConf, "-p", filepath.Join(d.Dir, "keepalived.pid"), "-r", filepath.Join(d.Dir, "vrrp.pid"))
	log := &LogBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that a kill reaches the VRRP child and the
	// notify scripts too; and killed with the lab's process should that
	// die before it can clean up (a test binary's time-out, say).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	exited, err := d.NS.Start(cmd)
	if err != nil {
		return fmt.Errorf("director %s: start keepalived: %w", d.Name, err)
	}
	// ip netns exec execs keepalived in place: its pid leads the group.
	d.mu.Lock()
	d.ka = &kaProc{pgid: cmd.Process.Pid, exited: exited, log: log}
	d.mu.Unlock()
	return nil
}

// Daemon is the director's current afvs.
func (d *HADirector) Daemon() *Daemon {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.afv
}

// Control returns a control API client for the director's afvs.
func (d *HADirector) Control() *api.Client { return api.NewClient(d.Socket) }

// KeepalivedLog is what keepalived printed so far (all its starts).
func (d *HADirector) KeepalivedLog() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ka == nil {
		return ""
	}
	return d.ka.log.String()
}

// Notifications is what the notify script logged so far.
func (d *HADirector) Notifications() string {
	b, _ := os.ReadFile(d.NotifyLog)
	return string(b)
}

// NotifyMark is the notify log's length now, for WaitNotify to look only
// at what comes after it.
func (d *HADirector) NotifyMark() int { return len(d.Notifications()) }

// WaitNotify waits until the notify script has logged, after mark, a line
// containing s, and returns the log in its error after timeout.
func (d *HADirector) WaitNotify(mark int, s string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if n := d.Notifications(); len(n) >= mark && strings.Contains(n[mark:], s) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("director %s: the notify script did not log %q within %v; it logged:\n%s\nkeepalived:\n%s", d.Name, s, timeout, d.Notifications(), d.KeepalivedLog())
		}
	}
}

// Owns reports whether the director holds the next hop (keepalived's
// virtual_ipaddress) on eth0.
func (d *HADirector) Owns() (bool, error) {
	own := false
	err := d.NS.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == d.lab.NextHop {
				own = true
			}
		}
		return nil
	})
	return own, err
}

// WaitOwns waits until Owns reports want.
func (d *HADirector) WaitOwns(want bool, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		own, err := d.Owns()
		if err != nil {
			return err
		}
		if own == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("director %s: holds %s = %v after %v; keepalived:\n%s", d.Name, d.lab.NextHop, own, timeout, d.KeepalivedLog())
		}
	}
}

// signalKill sends SIGKILL to keepalived's whole process group and to
// afvs, back to back, as a crash of both would.
func (d *HADirector) signalKill() (waits []<-chan struct{}, err error) {
	d.mu.Lock()
	ka, dm := d.ka, d.afv
	d.mu.Unlock()
	var errs []error
	if ka != nil {
		errs = append(errs, syscall.Kill(-ka.pgid, syscall.SIGKILL))
		waits = append(waits, ka.exited)
	}
	if dm != nil {
		errs = append(errs, dm.Process().Kill())
		waits = append(waits, dm.Exited())
	}
	return waits, errors.Join(errs...)
}

// Kill sends SIGKILL to the director's keepalived (its process group) and
// afvs, and waits until both have exited.
func (d *HADirector) Kill() error {
	waits, err := d.signalKill()
	if err != nil {
		return err
	}
	return waitAll(waits, 5*time.Second)
}

func waitAll(waits []<-chan struct{}, timeout time.Duration) error {
	deadline := time.After(timeout)
	for _, w := range waits {
		select {
		case <-w:
		case <-deadline:
			return fmt.Errorf("still running %v after SIGKILL", timeout)
		}
	}
	return nil
}

// Owner returns the index of the director that holds the next hop, or -1.
func (h *HALab) Owner() (int, error) {
	owner := -1
	for i, d := range h.Directors {
		own, err := d.Owns()
		if err != nil {
			return -1, err
		}
		if own {
			if owner >= 0 {
				return -1, fmt.Errorf("directors %s and %s both hold %s", h.Directors[owner].Name, d.Name, h.NextHop)
			}
			owner = i
		}
	}
	return owner, nil
}

// Failover is what KillOwner or CutOwner saw.
type Failover struct {
	Killed, Took *HADirector   // the director that failed, and the one that took over
	At           time.Time     // when the SIGKILLs were sent or the link went down
	Takeover     time.Duration // until Took held the next hop
	Gap          time.Duration // until a new connection to the VIP was answered
	Answer       string        // the real server that answered it
	// Exited is until the killed processes had exited (KillOwner,
	// CrashOwnerAFVS; zero for CutOwner). Until then a killed afvs's
	// XDP program may still redirect frames to its sockets, where they
	// are lost rather than passed to the kernel.
	Exited time.Duration
}

// KillOwner SIGKILLs the owner's keepalived and afvs, and measures until
// the other director holds the next hop and until a new connection to the
// VIP is answered, each within limit.
func (h *HALab) KillOwner(limit time.Duration) (Failover, error) {
	return h.failOwner(limit, func(d *HADirector, at *time.Time) ([]<-chan struct{}, error) {
		*at = time.Now()
		return d.signalKill()
	})
}

// CutOwner takes the owner's link down at the switch (its bridge port),
// as a pulled cable would: keepalived and afvs keep running there, cut
// off. It measures as KillOwner does, from the SIOCSIFFLAGS call that
// takes the port down, made in this process (running ip(8) would put a
// fork and exec of unknown length between the instant taken as the
// failure and the failure itself).
func (h *HALab) CutOwner(limit time.Duration) (Failover, error) {
	return h.failOwner(limit, func(d *HADirector, at *time.Time) ([]<-chan struct{}, error) {
		return nil, h.Switch.Do(func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			ifr, err := unix.NewIfreq(d.SwitchPort)
			if err != nil {
				return err
			}
			if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
				return fmt.Errorf("flags of %s: %w", d.SwitchPort, err)
			}
			ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
			*at = time.Now()
			if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
				return fmt.Errorf("take %s down: %w", d.SwitchPort, err)
			}
			return nil
		})
	})
}

// CrashOwnerAFVS SIGKILLs only the owner's afvs. keepalived runs on and
// must notice through the shipped vrrp_script (afvs-check.sh), go to
// FAULT and give the address up. It measures as KillOwner does.
func (h *HALab) CrashOwnerAFVS(limit time.Duration) (Failover, error) {
	return h.failOwner(limit, func(d *HADirector, at *time.Time) ([]<-chan struct{}, error) {
		dm := d.Daemon()
		if dm == nil {
			return nil, fmt.Errorf("director %s runs no afvs", d.Name)
		}
		*at = time.Now()
		return []<-chan struct{}{dm.Exited()}, dm.Process().Kill()
	})
}

// failOwner makes the owner fail with fail, which sets at to the instant
// of the failure (just before the kill or the ioctl) and returns what to
// wait for to know the failed processes gone. Every duration of the
// Failover counts from that instant.
func (h *HALab) failOwner(limit time.Duration, fail func(d *HADirector, at *time.Time) ([]<-chan struct{}, error)) (Failover, error) {
	i, err := h.Owner()
	if err != nil {
		return Failover{}, err
	}
	if i < 0 {
		return Failover{}, errors.New("no director holds the next hop")
	}
	f := Failover{Killed: h.Directors[i], Took: h.Directors[1-i]}
	waits, err := fail(f.Killed, &f.At)
	if err != nil {
		return f, err
	}
	type answer struct {
		at   time.Time
		name string
		err  error
	}
	first := make(chan answer, 1)
	go func() {
		at, name, err := h.firstAnswer(f.At.Add(limit))
		first <- answer{at, name, err}
	}()
	if err := waitAll(waits, 5*time.Second); err != nil {
		return f, fmt.Errorf("director %s: %w", f.Killed.Name, err)
	}
	if len(waits) > 0 {
		f.Exited = time.Since(f.At)
	}
	if err := f.Took.WaitOwns(true, time.Until(f.At.Add(limit))); err != nil {
		return f, err
	}
	f.Takeover = time.Since(f.At)
	a := <-first
	if a.err != nil {
		return f, a.err
	}
	f.Gap, f.Answer = a.at.Sub(f.At), a.name
	return f, nil
}

// firstAnswer starts a new connection to the VIP every 10 ms, each with
// one second to be answered, and returns when the first handshake
// completes (the real server's SYN-ACK, through whichever director
// forwarded the SYN), or at deadline; then it sends an HTTP request on
// that connection for the real server's name. The probing runs on one OS
// thread raised to real-time priority (SCHED_FIFO) in the client's
// namespace, with non-blocking sockets and poll(2), so that a busy machine
// delays neither the SYNs nor the moment their answer is seen.
func (h *HALab) firstAnswer(deadline time.Time) (time.Time, string, error) {
	var at time.Time
	connected := -1
	var lastErr error
	err := h.Client.Do(func() error {
		// The thread goes back to the runtime's pool afterwards: it gets
		// its own scheduling back first.
		old, err := unix.SchedGetAttr(0, 0)
		if err != nil {
			return err
		}
		if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 10}, 0); err != nil {
			return fmt.Errorf("real-time priority for the prober: %w", err)
		}
		defer func() { _ = unix.SchedSetAttr(0, old, 0) }()
		type probe struct {
			fd    int
			start time.Time
		}
		var probes []probe
		defer func() {
			for _, p := range probes {
				if p.fd != connected {
					unix.Close(p.fd)
				}
			}
		}()
		vip := &unix.SockaddrInet4{Port: int(h.Port), Addr: h.VIP.As4()}
		next := time.Now()
		for time.Now().Before(deadline) {
			if now := time.Now(); !now.Before(next) {
				next = now.Add(10 * time.Millisecond)
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				port := firstClientPort + int(h.nextPort.Add(1)%clientPorts)
				if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
					unix.Close(fd)
					lastErr = err
					continue
				}
				if err := unix.Connect(fd, vip); err != nil && err != unix.EINPROGRESS {
					unix.Close(fd)
					lastErr = err
					continue
				}
				probes = append(probes, probe{fd, now})
			}
			// Give up on probes older than a second (their SYN would be
			// retransmitted only now) and wait for the others.
			live := probes[:0]
			for _, p := range probes {
				if time.Since(p.start) > time.Second {
					unix.Close(p.fd)
					lastErr = errors.New("no SYN-ACK within 1s")
					continue
				}
				live = append(live, p)
			}
			probes = live
			pfds := make([]unix.PollFd, len(probes))
			for i, p := range probes {
				pfds[i] = unix.PollFd{Fd: int32(p.fd), Events: unix.POLLOUT}
			}
			wait := max(time.Until(next), 0)
			if _, err := unix.Poll(pfds, int(wait.Milliseconds())+1); err != nil && err != unix.EINTR {
				return err
			}
			now := time.Now()
			for i, pfd := range pfds {
				if pfd.Revents == 0 {
					continue
				}
				soErr, err := unix.GetsockoptInt(probes[i].fd, unix.SOL_SOCKET, unix.SO_ERROR)
				if err == nil && soErr == 0 && pfd.Revents&unix.POLLOUT != 0 {
					at, connected = now, probes[i].fd
					return nil
				}
				if soErr != 0 {
					lastErr = syscall.Errno(soErr)
				}
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, "", err
	}
	if connected < 0 {
		return time.Time{}, "", fmt.Errorf("no new connection to %s:%d was answered by %v (last error: %v)", h.VIP, h.Port, deadline.Format(time.StampMilli), lastErr)
	}
	f := os.NewFile(uintptr(connected), "probe")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return time.Time{}, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.VIP.String()+"/", nil)
	req.Close = true
	name, err := roundTrip(c, bufio.NewReader(c), req)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("the first connection answered through the new owner, but its HTTP request failed: %w", err)
	}
	return at, name, nil
}

// dial opens a TCP connection to the VIP from the client, from a client
// port this lab has not used before (see Lab.dial).
func (h *HALab) dial(timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.Client.Do(func() error {
		var err error
		for range 64 {
			port := firstClientPort + int(h.nextPort.Add(1)%clientPorts)
			d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{Port: port}}
			if c, err = d.Dial("tcp", netip.AddrPortFrom(h.VIP, h.Port).String()); !errors.Is(err, syscall.EADDRINUSE) {
				return err
			}
		}
		return err
	})
	return c, err
}

// roundTrip writes req on c and reads the answer, a real server's name.
func roundTrip(c net.Conn, br *bufio.Reader, req *http.Request) (string, error) {
	if err := req.Write(c); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// HeldConn is one long-lived connection of a Holder.
type HeldConn struct {
	Port     int       // the client's port
	Server   string    // the real server that answered its first request
	Answers  int       // requests answered
	LastOK   time.Time // when the last answer came
	Err      error     // the first failure, after which the connection was closed
	ErrAt    time.Time
	Switched string // a later answer from another real server, if any
}

// Reset reports whether the connection failed with a reset.
func (c HeldConn) Reset() bool { return errors.Is(c.Err, syscall.ECONNRESET) }

// Holder keeps HTTP/1.1 keep-alive connections to the VIP, each sending
// a request at a fixed interval on its one TCP connection. A failed
// request ends its connection: no retry, no new connection, so every
// failure counts.
type Holder struct {
	mu    sync.Mutex
	conns []*HeldConn
	stop  chan struct{}
	wg    sync.WaitGroup
}

// Hold opens n connections, sends each a first request, and then a
// request every interval on each, allowing timeout for each answer.
func (h *HALab) Hold(n int, interval, timeout time.Duration) (*Holder, error) {
	hd := &Holder{stop: make(chan struct{})}
	type opened struct {
		c  net.Conn
		br *bufio.Reader
		hc *HeldConn
	}
	var all []opened
	for range n {
		c, err := h.dial(3 * time.Second)
		if err != nil {
			for _, o := range all {
				o.c.Close()
			}
			return nil, fmt.Errorf("connection %d of %d: %w", len(all)+1, n, err)
		}
		o := opened{c: c, br: bufio.NewReader(c), hc: &HeldConn{Port: c.LocalAddr().(*net.TCPAddr).Port}}
		all = append(all, o)
		_ = c.SetDeadline(time.Now().Add(timeout))
		name, err := roundTrip(c, o.br, hd.request(h))
		if err != nil {
			for _, o := range all {
				o.c.Close()
			}
			return nil, fmt.Errorf("first request on connection %d of %d: %w", len(all), n, err)
		}
		o.hc.Server, o.hc.Answers, o.hc.LastOK = name, 1, time.Now()
	}
	for i, o := range all {
		hd.conns = append(hd.conns, o.hc)
		hd.wg.Add(1)
		go func() {
			defer hd.wg.Done()
			defer o.c.Close()
			// Spread the connections' requests over the interval.
			t := time.NewTimer(interval * time.Duration(i) / time.Duration(n))
			defer t.Stop()
			for {
				select {
				case <-hd.stop:
					return
				case <-t.C:
				}
				t.Reset(interval)
				_ = o.c.SetDeadline(time.Now().Add(timeout))
				name, err := roundTrip(o.c, o.br, hd.request(h))
				hd.mu.Lock()
				if err != nil {
					o.hc.Err, o.hc.ErrAt = err, time.Now()
				} else {
					o.hc.Answers++
					o.hc.LastOK = time.Now()
					if name != o.hc.Server && o.hc.Switched == "" {
						o.hc.Switched = name
					}
				}
				hd.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return hd, nil
}

func (hd *Holder) request(h *HALab) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.VIP.String()+"/", nil)
	return req
}

// Conns returns a copy of the connections' state now.
func (hd *Holder) Conns() []HeldConn {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	out := make([]HeldConn, len(hd.conns))
	for i, c := range hd.conns {
		out[i] = *c
	}
	return out
}

// Stop ends every connection's loop, closes the connections and returns
// their final state. A request in flight finishes first (or times out).
func (hd *Holder) Stop() []HeldConn {
	select {
	case <-hd.stop:
	default:
		close(hd.stop)
	}
	hd.wg.Wait()
	return hd.Conns()
}

// HeldSummary counts a Holder's connections.
type HeldSummary struct {
	Total, Survived, Failed, Resets, Switched int
	FirstErrors                               []string // a few failures, with their connection
}

// Summarize counts connections that kept answering from their first real
// server with an answer after since (survivors), failed, failed with a
// reset, or were answered by another real server.
func Summarize(conns []HeldConn, since time.Time) HeldSummary {
	s := HeldSummary{Total: len(conns)}
	for _, c := range conns {
		switch {
		case c.Err != nil:
			s.Failed++
			if c.Reset() {
				s.Resets++
			}
			if len(s.FirstErrors) < 5 {
				s.FirstErrors = append(s.FirstErrors, fmt.Sprintf("port %d (%s): %v", c.Port, c.Server, c.Err))
			}
		case c.Switched != "":
			s.Switched++
			if len(s.FirstErrors) < 5 {
				s.FirstErrors = append(s.FirstErrors, fmt.Sprintf("port %d: answered by %s, then by %s", c.Port, c.Server, c.Switched))
			}
		case c.LastOK.After(since):
			s.Survived++
		}
	}
	return s
}

// FrameCounter counts, on one interface of a namespace, the TCP frames to
// the VIP's port that arrive there. It keeps each frame's arrival time,
// the kernel's receive timestamp, so that a count of the frames after an
// instant does not depend on how far its reader, which a busy machine may
// hold back, had got by then.
type FrameCounter struct {
	mu      sync.Mutex
	arrived []time.Time // each counted frame's kernel receive time
	// readTo is the arrival time of the last frame read, counted or not
	// (VRRP adverts, say), or the time the reader last found the socket
	// empty: every frame that arrived before it has been read.
	readTo   time.Time
	fd       int
	stopping atomic.Bool
	done     chan struct{}
}

// timespecLen is the size of the SCM_TIMESTAMPNS control message's data.
const timespecLen = int(unsafe.Sizeof(unix.Timespec{}))

// CountVIPFrames starts a FrameCounter on dev in ns.
func (h *HALab) CountVIPFrames(ns *NS, dev string) (*FrameCounter, error) {
	fc := &FrameCounter{done: make(chan struct{})}
	const proto = uint16(unix.ETH_P_IP>>8 | unix.ETH_P_IP&0xff<<8) // htons(ETH_P_IP)
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(dev)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index})
		}
		if err == nil {
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		}
		if err == nil {
			err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		fc.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count frames on %s %s: %w", ns.Name, dev, err)
	}
	vip, port := h.VIP.As4(), h.Port
	go func() {
		defer close(fc.done)
		buf := make([]byte, 2048)
		oob := make([]byte, unix.CmsgSpace(timespecLen))
		for !fc.stopping.Load() {
			// A receive that times out found nothing from its start on.
			start := time.Now()
			n, oobn, _, from, err := unix.Recvmsg(fc.fd, buf, oob, 0)
			if err != nil {
				if err == unix.EAGAIN {
					fc.mu.Lock()
					if start.After(fc.readTo) {
						fc.readTo = start
					}
					fc.mu.Unlock()
				}
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				return
			}
			at := time.Now() // should the kernel give no timestamp
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= timespecLen {
						ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
						at = time.Unix(ts.Unix())
					}
				}
			}
			// Ethernet, IPv4 (protocol 6, destination the VIP), TCP
			// destination port after the IP header.
			f := buf[:n]
			ll, _ := from.(*unix.SockaddrLinklayer)
			ihl := 0
			if n >= 34 {
				ihl = int(f[14]&0x0f) * 4
			}
			count := (ll == nil || ll.Pkttype != unix.PACKET_OUTGOING) && n >= 34 && f[23] == 6 && [4]byte(f[30:34]) == vip &&
				n >= 14+ihl+4 && uint16(f[14+ihl+2])<<8|uint16(f[14+ihl+3]) == port
			fc.mu.Lock()
			if count {
				fc.arrived = append(fc.arrived, at)
			}
			if at.After(fc.readTo) {
				fc.readTo = at
			}
			fc.mu.Unlock()
		}
	}()
	return fc, nil
}

// Count is the number of frames counted so far.
func (fc *FrameCounter) Count() int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return int64(len(fc.arrived))
}

// Since is the number of frames counted so far that arrived at t or later.
func (fc *FrameCounter) Since(t time.Time) int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var n int64
	for _, at := range fc.arrived {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// CatchUp waits until the reader has read every frame that arrived
// before now, for at most timeout, and reports whether it did: until it
// has read a frame that arrived later (any frame on the link, VRRP's
// adverts included) or found the socket empty.
func (fc *FrameCounter) CatchUp(timeout time.Duration) bool {
	now := time.Now()
	for deadline := now.Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		fc.mu.Lock()
		done := !fc.readTo.Before(now)
		fc.mu.Unlock()
		if done {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Stop ends the count; the socket closes after the reader has returned.
func (fc *FrameCounter) Stop() {
	if !fc.stopping.Swap(true) {
		<-fc.done
		unix.Close(fc.fd)
	}
}

// Close kills keepalived and afvs on both directors and removes the
// network and the scratch files.
func (h *HALab) Close() error {
	for _, d := range h.Directors {
		d.mu.Lock()
		ka, dm := d.ka, d.afv
		d.mu.Unlock()
		if ka != nil {
			_ = syscall.Kill(-ka.pgid, syscall.SIGKILL)
			select {
			case <-ka.exited:
			case <-time.After(5 * time.Second):
			}
		}
		if dm != nil {
			_ = dm.Stop(os.Interrupt)
		}
	}
	err := h.Net.Close()
	os.RemoveAll(h.Dir)
	return err
}
