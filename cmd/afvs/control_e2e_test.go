package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// emptyConfig is a director config with interfaces and no services: the
// service comes from afvsadm alone.
func emptyConfig(lab *testnet.Lab) string {
	return fmt.Sprintf("interfaces: [eth0]\nmetrics: {address: \"127.0.0.1:9469\"}\ncontrol: {socket: %s}\ntable: {capacity: 65536}\n", lab.Socket)
}

// serviceConfig is a wrr service on the lab's VIP with the given weights
// for the lab's real servers, by index; a negative weight leaves the
// server out.
func serviceConfig(lab *testnet.Lab, sched string, weights ...int) string {
	var b strings.Builder
	b.WriteString(emptyConfig(lab))
	fmt.Fprintf(&b, "services:\n  - proto: tcp\n    address: %s\n    port: %d\n    scheduler: %s\n    forward: %s\n    reals:\n", lab.VIP, lab.Port, sched, lab.Opt.Mode)
	for i, w := range weights {
		if w >= 0 {
			fmt.Fprintf(&b, "      - {address: %s, weight: %d}\n", lab.RealAddrs[i], w)
		}
	}
	return b.String()
}

func writeLabConfig(t *testing.T, lab *testnet.Lab, text string) {
	t.Helper()
	// Write and rename, so a reload never reads half a file.
	tmp := lab.ConfigPath + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, lab.ConfigPath); err != nil {
		t.Fatal(err)
	}
}

// afvsadm runs the built afvsadm binary against the lab's socket.
func afvsadm(t *testing.T, lab *testnet.Lab, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	_, bin := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AFVS_SOCKET="+lab.Socket)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func mustAfvsadm(t *testing.T, lab *testnet.Lab, args ...string) string {
	t.Helper()
	out, errOut, err := afvsadm(t, lab, "", args...)
	if err != nil || errOut != "" {
		t.Fatalf("afvsadm %s: %v: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// tcpOutSegs reads the TCP segments ns has sent: OutSegs plus
// RetransSegs. Linux's OutSegs, as RFC 1213's tcpOutSegs, leaves out a
// segment that carries only retransmitted sequence space (a SYN or a
// request sent again), which RetransSegs counts; a director counts every
// frame it receives, the retransmissions a busy machine causes included.
func tcpOutSegs(t *testing.T, ns *testnet.NS) uint64 {
	t.Helper()
	var n uint64
	err := ns.Do(func() error {
		// thread-self: Do switched this thread's namespace, not the process's.
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "Tcp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			found := 0
			for i, name := range names {
				if name == "OutSegs" || name == "RetransSegs" {
					v, err := strconv.ParseUint(f[i], 10, 64)
					if err != nil {
						return err
					}
					n += v
					found++
				}
			}
			if found != 2 {
				return fmt.Errorf("snmp's Tcp line lacks OutSegs or RetransSegs: %v", names)
			}
			return nil
		}
		return fmt.Errorf("no Tcp OutSegs in snmp")
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// statsLine parses a --stats --exact line for addr: conns, inpkts, outpkts,
// inbytes, outbytes.
func statsLine(t *testing.T, out, addr string) [5]uint64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(?:TCP  |  -> )` + regexp.QuoteMeta(addr) + ` +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no stats line for %s in\n%s", addr, out)
	}
	var v [5]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(m[i+1], 10, 64)
	}
	return v
}

// TestAfvsadmBuildsTheService starts afvs with no services, builds one
// with afvsadm alone, passes HTTP through it and checks the statistics
// against what the client sent.
func TestAfvsadmBuildsTheService(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", NoDirector: true})
	writeLabConfig(t, lab, emptyConfig(lab))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	if got := mustAfvsadm(t, lab, "-S", "-n"); got != "" {
		t.Fatalf("empty config, but -S printed\n%s", got)
	}
	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "rr")
	for _, a := range lab.RealAddrs {
		mustAfvsadm(t, lab, "-a", "-t", vip, "-r", a.String(), "-g", "-w", "1")
	}
	before := tcpOutSegs(t, lab.Client)
	const n = 300
	res := lab.Get(n, 4)
	if res.OK != n {
		t.Fatalf("%d of %d requests answered: %v", res.OK, n, res.Errors)
	}
	for _, name := range lab.Names {
		if res.By[name] != n/len(lab.Names) {
			t.Errorf("rr: %s answered %d, want %d", name, res.By[name], n/len(lab.Names))
		}
	}
	// The client still ACKs the servers' FINs after Get returns, and the
	// director counts a frame a moment after the client sent it: read both
	// until they agree, or give up after 15 s (each round runs afvsadm,
	// which a busy machine may take a second to start).
	var out string
	var svc [5]uint64
	var sent uint64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sent = tcpOutSegs(t, lab.Client) - before
		out = mustAfvsadm(t, lab, "-L", "-n", "--stats", "--exact")
		if svc = statsLine(t, out, vip); svc[1] == sent || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("client sent %d TCP segments for %d requests\n%s", sent, n, out)
	if svc[0] != n {
		t.Errorf("service counted %d connections, client made %d", svc[0], n)
	}
	if svc[1] != sent {
		t.Errorf("service counted %d packets in, client sent %d segments", svc[1], sent)
	}
	if svc[2] != 0 || svc[4] != 0 {
		t.Errorf("with DR the replies bypass the director, so IPVS counts nothing out: out %d pkts %d bytes", svc[2], svc[4])
	}
	if svc[3] < 40*svc[1] {
		t.Errorf("%d bytes in for %d packets: below the 40-byte IPv4+TCP minimum", svc[3], svc[1])
	}
	var conns, pkts uint64
	for _, a := range lab.RealAddrs {
		d := statsLine(t, out, netip.AddrPortFrom(a, lab.Port).String())
		conns, pkts = conns+d[0], pkts+d[1]
		if d[0] != n/3 {
			t.Errorf("real server %s counted %d connections, want %d", a, d[0], n/3)
		}
	}
	if conns != svc[0] || pkts != svc[1] {
		t.Errorf("real servers sum to %d conns %d pkts, service has %d and %d", conns, pkts, svc[0], svc[1])
	}
	// -L -n -c lists every connection the client made that has not
	// expired: an entry the client closed with a reset is in CLOSE, which
	// times out after 10 s, and a busy machine may take that long to get
	// here. The table counts what expired; read it on both sides of the
	// listing, the only traffic this director has seen being the
	// client's.
	expired := func() uint64 {
		st, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.Table.Expired
	}
	exp0 := expired()
	list := mustAfvsadm(t, lab, "-L", "-n", "-c")
	exp1 := expired()
	re := regexp.MustCompile(`(?m)^TCP \d\d:\d\d  [A-Z_]+ +198\.18\.0\.10:\d+ +` + regexp.QuoteMeta(vip) + ` +198\.18\.0\.1[123]:80$`)
	if got := uint64(len(re.FindAllString(list, -1))); got+exp0 > n || got+exp1 < n {
		t.Errorf("-L -n -c lists %d connections from the client, and %d to %d expired; want %d in all:\n%.2000s", got, exp0, exp1, n, list)
	} else if exp1 > 0 {
		t.Logf("-L -n -c lists %d connections from the client; %d to %d had expired", got, exp0, exp1)
	}
	// /metrics answers on the director's loopback. The socket is dialled
	// inside Do, since http.Transport would dial on another thread, in
	// another namespace.
	var metrics string
	err := lab.Director.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9469", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		metrics = string(b)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return err
	})
	if err != nil {
		t.Fatalf("/metrics from the director's namespace: %v", err)
	}
	for _, want := range []string{
		fmt.Sprintf("afvs_service_connections_total{service=\"tcp:%s\"} %d\n", vip, n),
		fmt.Sprintf("afvs_service_packets_total{direction=\"in\",service=\"tcp:%s\"} %d\n", vip, svc[1]),
		"afvs_build_info{",
		"afvs_queue_rx_packets_total{dev=\"eth0\",queue=\"0\"}",
		"afvs_queue_ring_events_total{dev=\"eth0\",event=\"fill_ring_empty\",queue=\"0\"} 0\n",
		"afvs_queue_ring_events_total{dev=\"eth0\",event=\"rx_ring_full\",queue=\"0\"}",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	// The worker took the traffic in batches: at least one, at most one
	// per frame.
	if m := regexp.MustCompile(`afvs_queue_ring_events_total\{dev="eth0",event="rx_batches",queue="0"\} ([1-9]\d*)\n`).FindStringSubmatch(metrics); m == nil {
		t.Errorf("/metrics has no nonzero rx_batches for eth0 queue 0")
	}
}

// keepAlive holds HTTP/1.1 connections open through the director and
// sends a request on each every few milliseconds, recording which real
// server answers and any failure.
type keepAlive struct {
	mu      sync.Mutex
	servers []string // first answer per connection
	moved   []string
	errs    []string
	reqs    int
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startKeepAlive(t *testing.T, lab *testnet.Lab, conns int) *keepAlive {
	t.Helper()
	return startKeepAliveTo(t, lab, netip.AddrPortFrom(lab.VIP, lab.Port), conns)
}

// startKeepAliveTo is startKeepAlive to vip, e.g. the lab's IPv6 VIP.
func startKeepAliveTo(t *testing.T, lab *testnet.Lab, vip netip.AddrPort, conns int) *keepAlive {
	t.Helper()
	k := &keepAlive{servers: make([]string, conns), stop: make(chan struct{})}
	addr := vip.String()
	for i := range conns {
		var c net.Conn
		if err := lab.Client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", addr, 3*time.Second)
			return err
		}); err != nil {
			t.Fatalf("keep-alive connection %d: %v", i, err)
		}
		k.wg.Add(1)
		go k.run(i, c)
	}
	t.Cleanup(k.halt)
	return k
}

func (k *keepAlive) run(i int, c net.Conn) {
	defer k.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	fail := func(err error) {
		k.mu.Lock()
		k.errs = append(k.errs, fmt.Sprintf("connection %d: %v", i, err))
		k.mu.Unlock()
	}
	for {
		select {
		case <-k.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
			fail(err)
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fail(err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.Close {
			fail(fmt.Errorf("status %s, close %v, %v", resp.Status, resp.Close, err))
			return
		}
		name := strings.TrimSpace(string(body))
		k.mu.Lock()
		k.reqs++
		if k.servers[i] == "" {
			k.servers[i] = name
		} else if k.servers[i] != name {
			k.moved = append(k.moved, fmt.Sprintf("connection %d moved from %s to %s", i, k.servers[i], name))
		}
		k.mu.Unlock()
	}
}

func (k *keepAlive) halt() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	k.wg.Wait()
}

func (k *keepAlive) check(t *testing.T, when string) int {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range append(k.errs, k.moved...) {
		t.Errorf("%s: %s", when, e)
	}
	return k.reqs
}

// waitReqs waits until the keep-alive connections have made more than n
// requests, so a check covers traffic after an event. The wait is long
// (15 s) because it only waits: on an idle machine the requests come in
// a fraction of a second, and a stall still fails.
func (k *keepAlive) waitReqs(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		k.mu.Lock()
		r, bad := k.reqs, len(k.errs)
		k.mu.Unlock()
		if r > n || bad > 0 {
			return
		}
	}
	t.Fatalf("keep-alive connections stalled at %d requests", n)
}

// waitLog waits until the director has logged want count times. A
// reload runs on the daemon's signal goroutine and its log line reaches
// the test through a pipe and a copying goroutine, all of which a busy
// machine may delay: the wait allows 15 s and logs how long it took.
func waitLog(t *testing.T, lab *testnet.Lab, want string, count int) {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Count(lab.DirectorLog(), want) >= count {
			if took := time.Since(start); took > time.Second {
				t.Logf("the director logged %q after %v", want, took.Round(time.Millisecond))
			}
			return
		}
	}
	t.Fatalf("director did not log %q (%d times) within 15s:\n%s", want, count, lab.DirectorLog())
}

func checkShare(t *testing.T, res testnet.Result, n int, want map[string]float64) {
	t.Helper()
	if res.OK != n {
		t.Fatalf("%d of %d requests answered: %v", res.OK, n, res.Errors)
	}
	for name, share := range want {
		if got := float64(res.By[name]); math.Abs(got-share*float64(n)) > 0.03*float64(n) {
			t.Errorf("%s answered %v of %d, want %v", name, got, n, share*float64(n))
		}
	}
}

// TestHotReloadUnderLoad reloads the configuration while HTTP keep-alive
// connections run through the director: by SIGHUP, by the reload
// endpoint, and with a broken file.
func TestHotReloadUnderLoad(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", NoDirector: true, Weights: []int{1, 1, 1, 1}})
	writeLabConfig(t, lab, serviceConfig(lab, "wrr", 1, 1, 1, -1))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	ka := startKeepAlive(t, lab, 6)
	ka.waitReqs(t, 60)
	checkShare(t, lab.Get(90, 3), 90, map[string]float64{"rs1": 1.0 / 3, "rs2": 1.0 / 3, "rs3": 1.0 / 3, "rs4": 0})

	// SIGHUP: rs1 quiesced (weight 0), rs4 added with weight 2. New
	// connections follow the new weights; the held ones stay put, those
	// on rs1 included.
	writeLabConfig(t, lab, serviceConfig(lab, "wrr", 0, 1, 1, 2))
	r := ka.check(t, "before reload")
	if err := lab.DirectorProcess().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lab, "reloaded configuration", 1)
	ka.waitReqs(t, r+60)
	checkShare(t, lab.Get(200, 4), 200, map[string]float64{"rs1": 0, "rs2": 0.25, "rs3": 0.25, "rs4": 0.5})
	r = ka.check(t, "after SIGHUP")

	// The reload endpoint (what afvsadm and curl use): weights 1, 1, 1, 1.
	writeLabConfig(t, lab, serviceConfig(lab, "wrr", 1, 1, 1, 1))
	if err := lab.Control().Reload(); err != nil {
		t.Fatalf("reload endpoint: %v", err)
	}
	ka.waitReqs(t, r+60)
	checkShare(t, lab.Get(200, 4), 200, map[string]float64{"rs1": 0.25, "rs2": 0.25, "rs3": 0.25, "rs4": 0.25})
	r = ka.check(t, "after reload endpoint")

	// A broken file: refused, the old table keeps running, and both ways
	// say why.
	saved := mustAfvsadm(t, lab, "-S", "-n")
	writeLabConfig(t, lab, strings.Replace(serviceConfig(lab, "wrr", 5, 1, 1, 1), "scheduler: wrr", "scheduler: fastest", 1))
	err := lab.Control().Reload()
	if err == nil || !strings.Contains(err.Error(), "old configuration still running") || !strings.Contains(err.Error(), `services[0].scheduler: "fastest"`) {
		t.Errorf("reload of a bad file answered %v", err)
	}
	if err := lab.DirectorProcess().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lab, `services[0].scheduler: \"fastest\"`, 1)
	if got := mustAfvsadm(t, lab, "-S", "-n"); got != saved {
		t.Errorf("a failed reload changed the table:\n%s\nwas\n%s", got, saved)
	}
	ka.waitReqs(t, r+60)
	checkShare(t, lab.Get(80, 4), 80, map[string]float64{"rs1": 0.25, "rs2": 0.25, "rs3": 0.25, "rs4": 0.25})
	ka.halt()
	total := ka.check(t, "after failed reload")
	t.Logf("keep-alive connections made %d requests across three reloads; servers %v", total, ka.servers)
}

// TestControlSocketPermissions checks the socket's mode and owner, and
// that uid 65534 is refused both by the file mode and, with the mode
// loosened by hand, by the SO_PEERCRED check.
func TestControlSocketPermissions(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr"})
	fi, err := os.Lstat(lab.Socket)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("control socket %s: mode %v uid %d gid %d, want socket 0600 root:root", lab.Socket, fi.Mode(), st.Uid, st.Gid)
	}
	// A copy of afvsadm that uid 65534 may run, and a directory it may
	// enter to reach the socket.
	_, bin := binaries(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	nobodyBin := filepath.Join(dir, "afvsadm")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nobodyBin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lab.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	asNobody := func() (string, string, error) {
		cmd := exec.Command(nobodyBin, "-L", "-n")
		cmd.Env = []string{"AFVS_SOCKET=" + lab.Socket}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	for _, step := range []struct {
		name, want string
		mode       os.FileMode
	}{
		{"socket 0600", "permission denied", 0o600},
		{"socket loosened to 0666", "Permission denied (you must be root)", 0o666},
	} {
		if err := os.Chmod(lab.Socket, step.mode); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := asNobody()
		t.Logf("%s: uid 65534 got %v: %s", step.name, err, strings.TrimSpace(errOut))
		if err == nil || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, step.want) {
			t.Errorf("%s: uid 65534: err %v, stdout %q, stderr %q; want refusal with %q", step.name, err, out, errOut, step.want)
		}
	}
	os.Chmod(lab.Socket, 0o600)
	// Root is still served.
	if out := mustAfvsadm(t, lab, "-L", "-n"); !strings.Contains(out, "TCP  198.19.0.1:80") {
		t.Errorf("root's listing:\n%s", out)
	}
}
