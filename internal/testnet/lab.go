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
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane/nic"
)

// LabOptions shape a Lab.
type LabOptions struct {
	AFVS          string // path of the afvs binary (director and real servers run it)
	Mode          string // "dr", "tun" or "nat"
	TwoInterfaces bool   // director receives on eth0 and sends on eth1, as in the LVS manual
	Weights       []int  // one per real server; default 1, 2, 3
	Scheduler     string // default wlc
	XDPMode       string // director's xdp_mode; default auto
	NoDirector    bool   // build the network and real servers, but do not start afvs
	Builtin       bool   // start afvs on its built-in default config (DR, one interface, weights 1,2,3)
	EgressMTU     int    // MTU of the director's eth1 (two-interface layout), to provoke fragmentation-needed
	Queues        int    // RX/TX queues of the director's eth0 (one worker each); default 1
	Health        string // health section of the director's config (YAML flow map), e.g. {interval: 200ms, timeout: 100ms, rise: 1, fall: 2}
	SorryLast     bool   // the last real server is the service's sorry server, not one of its real servers
	UDPPort       uint16 // also a UDP service on this port of the VIP, with the same real servers
	ReplyMTU      int    // one-interface layout: replies reach the client through a router whose link to it has this MTU (see buildReplyRouter)
	IPv6          bool   // a dual-stack lab with no services configured (lab6.go): afvsadm adds them
}

// Lab is the demo's and the end-to-end tests' network:
//
//	one interface:  client, director and real servers on one bridge,
//	                198.18.0.0/24; the VIP 198.19.0.1 is routed to the director.
//	two interfaces: client and director eth0 on 198.18.0.0/24; director
//	                eth1 and the real servers on 198.18.1.0/24. Real
//	                servers answer the client through the client's own leg
//	                on 198.18.1.0/24, never through the director.
//	VS/NAT with two interfaces: as the one-interface NAT layout, but the
//	                real servers sit on the director's eth1 (br1, the
//	                director's 198.18.2.1 there), and afvs receives on
//	                eth0 and eth1.
//	VS/NAT (Mode "nat", one interface): the real servers sit on the same
//	                bridge in 198.18.2.0/24, listen on port 8080 (the
//	                service is port 80), hold no VIP, and have the
//	                director's 198.18.2.1 (a second address on its eth0)
//	                as their default route; the client has no route to
//	                them. The director does not forward in the kernel
//	                (net.ipv4.ip_forward=0): every reply passes afvs.
type Lab struct {
	Net                      *Net
	Opt                      LabOptions
	Client, Director, Switch *NS
	Reals                    []*NS
	VIP                      netip.Addr
	Port                     uint16
	ClientAddr               netip.Addr
	RealAddrs                []netip.Addr
	RealAddrs6               []netip.Addr // the real servers' IPv6 addresses (LabOptions.IPv6)
	Names                    []string
	Dir                      string // scratch directory: config, socket, logs
	ConfigPath               string
	Socket                   string

	mu       sync.Mutex
	nextPort atomic.Uint32     // see dial
	realDone []<-chan struct{} // closed when real server i's process exits
	realProc []*os.Process
	director *Daemon
}

// NewLab builds the network, starts the real servers and (unless
// NoDirector) the director, and waits until all of them are ready. On error
// everything made so far is removed.
func NewLab(o LabOptions) (l *Lab, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ReapStale()
	if o.Mode == "" {
		o.Mode = "dr"
	}
	if len(o.Weights) == 0 {
		o.Weights = []int{1, 2, 3}
	}
	if o.Scheduler == "" {
		o.Scheduler = "wlc"
	}
	if o.XDPMode == "" {
		o.XDPMode = "auto"
	}
	dir, err := os.MkdirTemp("", "afvs-lab-")
	if err != nil {
		return nil, err
	}
	lab := &Lab{Net: New(), Opt: o, VIP: netip.MustParseAddr("198.19.0.1"), Port: 80, ClientAddr: netip.MustParseAddr("198.18.0.10"),
		Dir: dir}
	l = lab
	l.ConfigPath = filepath.Join(dir, "afvs.yaml")
	l.Socket = filepath.Join(dir, "afvs.sock")
	defer func() {
		if err != nil {
			lab.Close()
		}
	}()
	build := l.build
	if o.IPv6 {
		build = l.build6
	}
	if err := build(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(l.ConfigPath, []byte(l.Config()), 0o644); err != nil {
		return nil, err
	}
	if !o.NoDirector {
		if err := l.StartDirector(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *Lab) build() error {
	var err error
	n := l.Net
	if l.Switch, err = n.NS("sw"); err != nil {
		return err
	}
	if l.Client, err = n.NS("client"); err != nil {
		return err
	}
	if l.Director, err = n.NS("director"); err != nil {
		return err
	}
	bridges := []string{"br0"}
	if l.Opt.TwoInterfaces {
		bridges = append(bridges, "br1")
	}
	for _, br := range bridges {
		if err := l.Switch.IP("link", "add", br, "type", "bridge"); err != nil {
			return err
		}
		if err := l.Switch.IP("link", "set", br, "up"); err != nil {
			return err
		}
	}
	port := 0
	plug := func(ns *NS, dev, br, addr string) error {
		port++
		p := fmt.Sprintf("p%d", port)
		queues := 1
		if ns == l.Director && dev == "eth0" && l.Opt.Queues > 1 {
			queues = l.Opt.Queues
		}
		if err := VethQueues(l.Switch, p, ns, dev, queues); err != nil {
			return err
		}
		if err := l.Switch.IP("link", "set", p, "master", br); err != nil {
			return err
		}
		return ns.IP("addr", "add", addr, "dev", dev)
	}
	if err := plug(l.Client, "eth0", "br0", "198.18.0.10/24"); err != nil {
		return err
	}
	if err := plug(l.Director, "eth0", "br0", "198.18.0.2/24"); err != nil {
		return err
	}
	if err := l.Client.IP("route", "add", l.VIP.String()+"/32", "via", "198.18.0.2"); err != nil {
		return err
	}
	realNet, realBr := "198.18.0", "br0"
	nat := l.Opt.Mode == "nat"
	if nat {
		realNet = "198.18.2"
		if l.Opt.TwoInterfaces {
			// The manual's NAT layout: the real servers behind the
			// director's eth1, their gateway its 198.18.2.1 there.
			realBr = "br1"
			if err := plug(l.Director, "eth1", "br1", "198.18.2.1/24"); err != nil {
				return err
			}
		} else if err := l.Director.IP("addr", "add", "198.18.2.1/24", "dev", "eth0"); err != nil {
			return err
		}
		if err := l.Director.Sysctl("net.ipv4.ip_forward", "0"); err != nil {
			return err
		}
	}
	if l.Opt.TwoInterfaces && !nat {
		realNet, realBr = "198.18.1", "br1"
		if err := plug(l.Director, "eth1", "br1", "198.18.1.1/24"); err != nil {
			return err
		}
		if l.Opt.EgressMTU > 0 {
			if err := l.Director.IP("link", "set", "eth1", "mtu", fmt.Sprint(l.Opt.EgressMTU)); err != nil {
				return err
			}
		}
		// The client's second leg is the real servers' way back to it.
		if err := plug(l.Client, "eth1", "br1", "198.18.1.10/24"); err != nil {
			return err
		}
	}
	for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"} {
		if err := l.Client.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	for _, dev := range []string{"eth0", "eth1"} {
		if dev == "eth1" && (!l.Opt.TwoInterfaces || nat) {
			break
		}
		_ = l.Client.Sysctl("net.ipv4.conf."+dev+".rp_filter", "0")
		// veth TX checksum offload leaves partial TCP checksums that a
		// director intercepting frames with AF_XDP would forward broken.
		if err := l.Client.Do(func() error { return nic.DisableTxChecksum(dev) }); err != nil {
			return err
		}
	}
	for i := range l.Opt.Weights {
		name := fmt.Sprintf("rs%d", i+1)
		ns, err := l.Net.NS(name)
		if err != nil {
			return err
		}
		addr := netip.MustParseAddr(fmt.Sprintf("%s.%d", realNet, 11+i))
		if err := plug(ns, "eth0", realBr, addr.String()+"/24"); err != nil {
			return err
		}
		if l.Opt.TwoInterfaces && !nat {
			if err := ns.IP("route", "add", "198.18.0.0/24", "via", "198.18.1.10"); err != nil {
				return err
			}
		}
		if nat {
			// The director rewrites the replies' addresses and ports and
			// updates their checksums incrementally; a partial checksum
			// left by veth's TX offload would stay wrong.
			if err := ns.Do(func() error { return nic.DisableTxChecksum("eth0") }); err != nil {
				return err
			}
		}
		l.Reals = append(l.Reals, ns)
		l.RealAddrs = append(l.RealAddrs, addr)
		l.Names = append(l.Names, name)
		if err := l.startRealServer(ns, name); err != nil {
			return err
		}
	}
	if l.Opt.ReplyMTU > 0 {
		return l.buildReplyRouter()
	}
	return nil
}

func (l *Lab) startRealServer(ns *NS, name string) error {
	args := realServerArgs(l.Opt.Mode, l.VIP, l.Port, name)
	if l.Opt.Mode == "nat" {
		args = []string{"realserver", "--mode", "nat", "--gateway", "198.18.2.1", "--dev", "eth0", "--http-name", name, "--http-port", fmt.Sprint(NATPort)}
	}
	done, proc, err := startRealServer(ns, l.Opt.AFVS, args, name)
	if proc != nil {
		l.mu.Lock()
		l.realDone = append(l.realDone, done)
		l.realProc = append(l.realProc, proc)
		l.mu.Unlock()
	}
	return err
}

// realServerArgs are the arguments of `afvs realserver` for a DR or TUN
// real server of vip answering HTTP on port with name.
func realServerArgs(mode string, vip netip.Addr, port uint16, name string) []string {
	return []string{"realserver", "--vip", vip.String(), "--mode", mode, "--dev", "eth0", "--http-name", name, "--http-port", fmt.Sprint(port)}
}

// startRealServer runs `afvs realserver` with args in ns and waits until
// it is ready. The process is the Net's to kill; proc is nil when it did
// not start.
func startRealServer(ns *NS, afvs string, args []string, name string) (<-chan struct{}, *os.Process, error) {
	cmd := ns.Command(afvs, args...)
	// An os.Pipe of our own rather than StdoutPipe: the Net runs Wait
	// while we still read, and Wait would close a StdoutPipe under us.
	out, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout = pw
	var stderr LogBuffer
	cmd.Stderr = &stderr
	done, err := ns.Start(cmd)
	pw.Close()
	if err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("start realserver %s: %w", name, err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "realserver ready") {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				out.Close()
				return
			}
		}
		out.Close()
		ready <- fmt.Errorf("realserver %s exited before it was ready: %s", name, strings.TrimSpace(stderr.String()))
	}()
	select {
	case err := <-ready:
		return done, cmd.Process, err
	case <-time.After(15 * time.Second):
		return done, cmd.Process, fmt.Errorf("realserver %s: not ready after 15s: %s", name, stderr.String())
	}
}

// NATPort is the port the real servers of a VS/NAT lab listen on: the
// director maps the service's port 80 to it.
const NATPort = 8080

// Config is the director's config for this lab.
func (l *Lab) Config() string {
	if l.Opt.IPv6 {
		return l.config6()
	}
	var b strings.Builder
	ifs := "[eth0]"
	if l.Opt.Mode == "nat" && l.Opt.TwoInterfaces {
		ifs = "[eth0, eth1]" // both receive: requests on eth0, replies on eth1
	}
	fmt.Fprintf(&b, "interfaces: %s\nxdp_mode: %s\nmetrics:\n  address: 127.0.0.1:9469\ncontrol:\n  socket: %s\ntable:\n  capacity: 65536\n", ifs, l.Opt.XDPMode, l.Socket)
	if l.Opt.Health != "" {
		fmt.Fprintf(&b, "health: %s\n", l.Opt.Health)
	}
	fmt.Fprintf(&b, "services:\n  - proto: tcp\n    address: %s\n    port: %d\n    scheduler: %s\n    forward: %s\n    reals:\n", l.VIP, l.Port, l.Opt.Scheduler, l.Opt.Mode)
	reals := l.RealAddrs
	if l.Opt.SorryLast {
		reals = reals[:len(reals)-1]
	}
	for i, a := range reals {
		if l.Opt.Mode == "nat" {
			fmt.Fprintf(&b, "      - {address: %s, port: %d, weight: %d}\n", a, NATPort, l.Opt.Weights[i])
			continue
		}
		fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", a, l.Opt.Weights[i])
	}
	if l.Opt.SorryLast {
		fmt.Fprintf(&b, "    sorry: {address: %s}\n", l.RealAddrs[len(l.RealAddrs)-1])
	}
	if l.Opt.UDPPort != 0 {
		fmt.Fprintf(&b, "  - proto: udp\n    address: %s\n    port: %d\n    scheduler: %s\n    forward: %s\n    reals:\n", l.VIP, l.Opt.UDPPort, l.Opt.Scheduler, l.Opt.Mode)
		for i, a := range reals {
			fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", a, l.Opt.Weights[i])
		}
	}
	return b.String()
}

// StartDirector starts afvs in the director namespace and waits for its
// control socket.
func (l *Lab) StartDirector(extra ...string) error {
	args := append([]string{"run", "--config", l.ConfigPath}, extra...)
	if l.Opt.Builtin {
		args = append([]string{"run", "--socket", l.Socket}, extra...)
	}
	d, err := StartDaemon(l.Director, l.Opt.AFVS, l.Socket, args...)
	l.mu.Lock()
	l.director = d
	l.mu.Unlock()
	return err
}

// StopReal stops real server i's afvs realserver process (its HTTP server
// and VIP go with it), as a crash of that server would.
func (l *Lab) StopReal(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i < 0 || i >= len(l.realProc) {
		return fmt.Errorf("no real server %d", i)
	}
	if err := l.realProc[i].Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-l.realDone[i]:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("real server %d still running 5s after SIGTERM", i)
	}
}

func (l *Lab) daemon() *Daemon {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.director
}

// DirectorProcess returns the afvs process, if one was started.
func (l *Lab) DirectorProcess() *os.Process {
	if d := l.daemon(); d != nil {
		return d.Process()
	}
	return nil
}

// StopDirector sends sig to afvs and waits for it to exit.
func (l *Lab) StopDirector(sig os.Signal) error {
	d := l.daemon()
	if d == nil {
		return errors.New("director is not running")
	}
	return d.Stop(sig)
}

// DirectorLog is what afvs printed so far.
func (l *Lab) DirectorLog() string {
	if d := l.daemon(); d != nil {
		return d.Log.String()
	}
	return ""
}

// Control returns a control API client for the lab's director.
func (l *Lab) Control() *api.Client { return api.NewClient(l.Socket) }

// Result is the outcome of a batch of HTTP requests.
type Result struct {
	OK, Failed int
	By         map[string]int // answers by real-server name
	Errors     []string       // the first few failures
}

// Get sends n HTTP/1.0 GETs to the VIP from the client, conc at a time,
// each on its own TCP connection.
func (l *Lab) Get(n, conc int) Result { return l.GetFrom(l.VIP, n, conc) }

// GetFrom is Get to vip (the lab's IPv4 or IPv6 VIP) on the lab's port.
func (l *Lab) GetFrom(vip netip.Addr, n, conc int) Result {
	res := Result{By: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	addr := netip.AddrPortFrom(vip, l.Port).String()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Client.Do(func() error {
				for range next {
					name, err := l.request(addr, 0, false)
					mu.Lock()
					if err != nil {
						res.Failed++
						if len(res.Errors) < 5 {
							res.Errors = append(res.Errors, err.Error())
						}
					} else {
						res.OK++
						res.By[name]++
					}
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return res
}

// GetKeepAlive sends n HTTP/1.1 GETs to the VIP from the client, one
// after another on one kept-alive TCP connection, and returns who
// answered.
func (l *Lab) GetKeepAlive(n int) Result {
	res := Result{By: map[string]int{}}
	fail := func(err error) {
		res.Failed++
		if len(res.Errors) < 5 {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	err := l.Client.Do(func() error {
		c, err := l.dial(netip.AddrPortFrom(l.VIP, l.Port).String(), false)
		if err != nil {
			return err
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for range n {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			answer, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 || resp.Close {
				return fmt.Errorf("status %s, close %v", resp.Status, resp.Close)
			}
			res.OK++
			res.By[strings.TrimSpace(string(answer))]++
		}
		return nil
	})
	if err != nil {
		fail(err)
	}
	return res
}

// Post sends one HTTP/1.0 POST with a body of size bytes from the client
// and returns the name of the real server that answered.
func (l *Lab) Post(size int) (string, error) { return l.post(size, false) }

// PostNoDF is Post from a socket that sends without DF (path MTU
// discovery off, IP_PMTUDISC_DONT), as some UDP applications do: packets
// too big for a tunnel must then be fragmented, not refused.
func (l *Lab) PostNoDF(size int) (string, error) { return l.post(size, true) }

func (l *Lab) post(size int, noDF bool) (string, error) {
	var name string
	err := l.Client.Do(func() error {
		var err error
		name, err = l.request(netip.AddrPortFrom(l.VIP, l.Port).String(), size, noDF)
		return err
	})
	return name, err
}

// Client ports dial hands out, one per connection, so that no two
// connections of a lab share a 4-tuple.
const (
	firstClientPort = 20000
	clientPorts     = 40000
)

// dial connects from a client port this lab has not used before. Left to
// the kernel, a port is sometimes reused within seconds (its choice of
// ephemeral port walks a sequence shared by every namespace, and the
// tests' thousands of connections to one VIP wrap it), and a reused port
// meets its old connection still in FIN_WAIT at the director. As in IPVS,
// that SYN continues the old entry and the old server instead of counting
// a new connection, which exact counts in tests cannot allow for.
func (l *Lab) dial(addr string, noDF bool) (net.Conn, error) {
	var err error
	for range 64 {
		port := firstClientPort + int(l.nextPort.Add(1)%clientPorts)
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: l.clientSource(), Port: port}}
		if noDF {
			d.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT)
				})
				return errors.Join(err, serr)
			}
		}
		var c net.Conn
		if c, err = d.Dial("tcp", addr); !errors.Is(err, syscall.EADDRINUSE) {
			return c, err
		}
	}
	return nil, err
}

func (l *Lab) request(addr string, body int, noDF bool) (string, error) {
	c, err := l.dial(addr, noDF)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.0\r\nHost: vip\r\n\r\n"
	if body > 0 {
		req = fmt.Sprintf("POST / HTTP/1.0\r\nHost: vip\r\nContent-Length: %d\r\n\r\n%s", body, strings.Repeat("x", body))
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return strings.TrimSpace(string(answer)), nil
}

// Close stops everything and deletes the namespaces and scratch files.
func (l *Lab) Close() error {
	if d := l.daemon(); d != nil {
		_ = d.Stop(os.Interrupt)
	}
	err := l.Net.Close()
	os.RemoveAll(l.Dir)
	return err
}

// WeightsOrDefault returns the real-server weights the lab uses.
func (o LabOptions) WeightsOrDefault() []int {
	if len(o.Weights) == 0 {
		return []int{1, 2, 3}
	}
	return o.Weights
}
