package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// binDir holds afvs and afvsadm built once for the end-to-end tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "afvs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce sync.Once
var buildErr error

func binaries(t *testing.T) (afvs, afvsadm string) {
	t.Helper()
	buildOnce.Do(func() {
		for _, b := range []string{"afvs", "afvsadm"} {
			args := []string{"build", "-o", filepath.Join(binDir, b)}
			if os.Getenv("AFVS_E2E_RACE") != "" {
				// The daemon and tools under the race detector; newLab's
				// cleanup fails the test on any report in afvs's log.
				args = append(args, "-race")
			}
			out, err := exec.Command("go", append(args, "github.com/afvs/afvs/cmd/"+b)...).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "afvs"), filepath.Join(binDir, "afvsadm")
}

func newLab(t *testing.T, o testnet.LabOptions) *testnet.Lab {
	t.Helper()
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	o.AFVS, _ = binaries(t)
	lab, err := testnet.NewLab(o)
	if err != nil {
		t.Fatal(err)
	}
	prefix := lab.Net.Prefix
	t.Cleanup(func() {
		if strings.Contains(lab.DirectorLog(), "DATA RACE") {
			t.Errorf("the race detector fired in afvs")
		}
		if t.Failed() {
			t.Logf("director log:\n%s", lab.DirectorLog())
		}
		if err := lab.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
		if left := testnet.Leftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	return lab
}

// capture counts, in the client's namespace, TCP frames coming from the VIP
// and records their source MACs: replies in DR and TUN must come straight
// from the real servers, never from the director.
type capture struct {
	mu       sync.Mutex
	macs     map[[6]byte]int
	fd       int
	stopping atomic.Bool
	done     chan struct{}
	// dropped, set at stop, bounds the frames the counts miss: those the
	// socket dropped for a full receive buffer (PACKET_STATISTICS), and
	// those the device dropped on receipt since the start (its
	// rx_dropped: a veth's frames wait in the receiving CPU's backlog,
	// which drops beyond net.core.netdev_max_backlog when the host is
	// busy, whoever's frames fill it).
	dropped int
	ns      *testnet.NS
	dev     string
	rxDrop0 uint64
}

// captureBuffer is the receive buffer a capture forces: room for every
// frame of a test's run (a few thousand, a few kB of kernel memory each)
// while the reading goroutine waits for a CPU on a busy machine; the
// default of about 200 kB holds a few hundred.
const captureBuffer = 64 << 20

func startCapture(t *testing.T, lab *testnet.Lab, dev string) *capture {
	t.Helper()
	vip := lab.VIP.As4()
	return captureIn(t, lab.Client, dev, func(f []byte) bool { return f[23] == 6 && [4]byte(f[26:30]) == vip })
}

// captureIn counts, by source MAC, the IPv4 frames ns receives on dev
// that keep accepts (it sees frames of at least 34 bytes). Frames dropped
// on receipt are counted in dropped once the capture stops.
func captureIn(t *testing.T, ns *testnet.NS, dev string, keep func(f []byte) bool) *capture {
	t.Helper()
	c := &capture{macs: map[[6]byte]int{}, done: make(chan struct{}), ns: ns, dev: dev}
	var err error
	if c.rxDrop0, err = rxDropped(ns, dev); err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureBuffer); err != nil {
			unix.Close(fd)
			return fmt.Errorf("receive buffer: %w", err)
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s: %v", dev, err)
	}
	fd := c.fd
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for {
			// Once stopping, read what is queued without waiting, and
			// return when the socket is empty: a reader a busy machine
			// kept behind still counts every frame that arrived.
			stopping := c.stopping.Load()
			flags := 0
			if stopping {
				flags = unix.MSG_DONTWAIT
			}
			n, _, err := unix.Recvfrom(fd, buf, flags)
			if err != nil {
				if err == unix.EAGAIN && stopping {
					return
				}
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				return
			}
			f := buf[:n]
			if n < 34 || !keep(f) {
				continue
			}
			c.mu.Lock()
			c.macs[[6]byte(f[6:12])]++
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop ends the capture. The reader sees the flag within its 100 ms
// receive timeout, then counts the frames still queued on the socket; the
// socket is closed only after it has returned, so it never reads a
// descriptor number that was closed and reused.
func (c *capture) stop() {
	if c.fd > 0 {
		c.stopping.Store(true)
		<-c.done
		if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			c.dropped = int(st.Drops)
		}
		if n, err := rxDropped(c.ns, c.dev); err == nil {
			c.dropped += int(n - c.rxDrop0)
		}
		unix.Close(c.fd)
		c.fd = -1
	}
}

// rxDropped reads dev's receive drops in ns (ip -s -j link).
func rxDropped(ns *testnet.NS, dev string) (uint64, error) {
	out, err := testnet.Output("ip", "-n", ns.Name, "-s", "-j", "link", "show", "dev", dev)
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -s -j link show %s in %s: %v: %.200s", dev, ns.Name, err, out)
	}
	return links[0].Stats64.RX.Dropped, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func macOf(t *testing.T, ns *testnet.NS, dev string) [6]byte {
	t.Helper()
	var mac [6]byte
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		copy(mac[:], ifi.HardwareAddr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// TestEndToEnd sends real HTTP through the director in DR and TUN mode, in
// the one-interface and the two-interface layout.
func TestEndToEnd(t *testing.T) {
	type variant struct{ layout, mode, xdp string }
	variants := []variant{{"one", "dr", "auto"}, {"one", "tun", "auto"}, {"two", "dr", "auto"}, {"two", "tun", "auto"}, {"one", "dr", "generic"}}
	for _, v := range variants {
		layout, mode := v.layout, v.mode
		{
			t.Run("layout="+layout+"/mode="+mode+"/xdp="+v.xdp, func(t *testing.T) {
				lab := newLab(t, testnet.LabOptions{Mode: mode, TwoInterfaces: layout == "two", Scheduler: "wrr", Weights: []int{1, 2, 3}, XDPMode: v.xdp})
				wantMode := map[string]string{"auto": "mode=native", "generic": "mode=generic"}[v.xdp]
				if !strings.Contains(lab.DirectorLog(), wantMode) {
					t.Errorf("steering program not attached with %s (auto picks native on veth):\n%s", wantMode, lab.DirectorLog())
				}
				replyDev := "eth0"
				if layout == "two" {
					replyDev = "eth1"
				}
				capt := startCapture(t, lab, replyDev)
				const n = 600
				res := lab.Get(n, 6)
				capt.stop()
				if res.Failed != 0 || res.OK != n {
					t.Fatalf("%d of %d requests failed: %v", res.Failed, n, res.Errors)
				}
				// wrr hands out connections in exact weight proportion; allow
				// 2%% of n for SYN retransmits and ordering at the edges.
				for i, name := range lab.Names {
					want := float64(n) * float64(lab.Opt.Weights[i]) / 6
					if got := float64(res.By[name]); math.Abs(got-want) > 0.02*n {
						t.Errorf("%s (weight %d) answered %v, want %v ± %v", name, lab.Opt.Weights[i], got, want, 0.02*n)
					}
				}
				// Replies bypass the director: every reply frame the client saw
				// came from a real server's MAC.
				dirMACs := map[[6]byte]bool{macOf(t, lab.Director, "eth0"): true}
				if layout == "two" {
					dirMACs[macOf(t, lab.Director, "eth1")] = true
				}
				realMACs := map[[6]byte]bool{}
				for _, ns := range lab.Reals {
					realMACs[macOf(t, ns, "eth0")] = true
				}
				replies := 0
				for mac, k := range capt.macs {
					if dirMACs[mac] {
						t.Errorf("client received %d reply frames from the director's MAC %x", k, mac)
					}
					if !realMACs[mac] {
						t.Errorf("client received %d reply frames from unknown MAC %x", k, mac)
					}
					replies += k
				}
				if replies+capt.dropped < n*3 {
					t.Errorf("captured only %d reply frames from the VIP (and %d dropped on receipt) for %d requests", replies, capt.dropped, n)
				}
				// The director transmitted exactly the client packets it
				// passed to real servers (counted in, as ip_vs_in_stats
				// counts them, less those its transmitter then refused): its
				// TX counters hold no reply traffic, and, as with DR and TUN
				// on Linux, no packet is counted out.
				st := quiesced(t, lab)
				svcs, err := lab.Control().Services()
				if err != nil {
					t.Fatal(err)
				}
				var in uint64
				for _, r := range svcs[0].Reals {
					in += r.Stats.InPkts
					if r.Stats.OutPkts != 0 || r.Stats.OutBytes != 0 {
						t.Errorf("real server %s counted %d packets, %d bytes out; replies never pass the director", r.Address, r.Stats.OutPkts, r.Stats.OutBytes)
					}
				}
				if o := svcs[0].Stats; o.OutPkts != 0 || o.OutBytes != 0 || o.InPkts != in {
					t.Errorf("service counted %d packets in (reals %d), %d packets and %d bytes out", o.InPkts, in, o.OutPkts, o.OutBytes)
				}
				sent := in + st.Fragmented + st.ICMPSent
				for _, why := range []string{"no_egress", "neighbor_unresolved", "frag_needed", "frag_needed_limited", "too_big", "no_headroom", "unsupported_forwarding", "tx_ring_full", "no_free_frame"} {
					sent -= st.Drops[why]
				}
				if st.TX != sent || st.TX == 0 {
					t.Errorf("director TX %d frames, but passed %d to real servers (%d counted in; drops %v)", st.TX, sent, in, st.Drops)
				}
				// Every request is a new connection: the lab's client never
				// reuses a port (testnet.Lab.dial says why that matters).
				if c := svcs[0].Stats.Conns; c != n {
					t.Errorf("service counted %d connections for %d requests", c, n)
				}
				t.Logf("%s/%s: %v; director rx %d tx %d; client saw %d reply frames, none from the director (%d dropped on receipt)", layout, mode, res.By, st.RX, st.TX, replies, capt.dropped)
			})
		}
	}
}

// linkHasXDP reports whether dev in ns has an XDP program attached.
func linkHasXDP(t *testing.T, ns *testnet.NS, dev string) bool {
	t.Helper()
	out, err := testnet.Output("ip", "-n", ns.Name, "-d", "link", "show", dev)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, "prog/xdp") || strings.Contains(out, " xdp")
}

// listenOnDirector opens a TCP listener on the director's own address, to
// show the interface still delivers the director's own traffic.
func listenOnDirector(t *testing.T, lab *testnet.Lab) net.Listener {
	t.Helper()
	var l net.Listener
	err := lab.Director.Do(func() error {
		var err error
		l, err = net.Listen("tcp", "198.18.0.2:2222")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("director\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

func dialDirector(lab *testnet.Lab) error {
	return lab.Client.Do(func() error {
		c, err := net.DialTimeout("tcp", "198.18.0.2:2222", 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 16)
		n, err := c.Read(b)
		if err != nil {
			return err
		}
		if string(b[:n]) != "director\n" {
			return fmt.Errorf("unexpected answer %q", b[:n])
		}
		return nil
	})
}

// TestSIGKILLLeavesNoBlackHole kills afvs with SIGKILL: the XDP program
// goes with it (bpf_link), and the interface keeps passing traffic.
func TestSIGKILLLeavesNoBlackHole(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr"})
	listenOnDirector(t, lab)
	if res := lab.Get(20, 2); res.OK != 20 {
		t.Fatalf("before kill: %d of 20 requests answered: %v", res.OK, res.Errors)
	}
	if !linkHasXDP(t, lab.Director, "eth0") {
		t.Fatal("afvs is running but eth0 shows no XDP program")
	}
	if err := dialDirector(lab); err != nil {
		t.Fatalf("director's own TCP port unreachable while afvs runs: %v", err)
	}
	if err := lab.StopDirector(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for linkHasXDP(t, lab.Director, "eth0") {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still attached 5s after SIGKILL: the interface is black-holed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := dialDirector(lab); err != nil {
		t.Fatalf("after SIGKILL the director's interface does not pass traffic: %v", err)
	}
}

// TestCleanStop stops afvs with SIGTERM: it exits, detaches, and removes
// its control socket.
func TestCleanStop(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "tun"})
	if res := lab.Get(20, 2); res.OK != 20 {
		t.Fatalf("%d of 20 answered: %v", res.OK, res.Errors)
	}
	p := lab.DirectorProcess()
	if err := lab.StopDirector(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if linkHasXDP(t, lab.Director, "eth0") {
		t.Error("XDP program left on eth0 after SIGTERM")
	}
	if _, err := os.Stat(lab.Socket); !os.IsNotExist(err) {
		t.Errorf("control socket %s left behind (%v)", lab.Socket, err)
	}
	if !strings.Contains(lab.DirectorLog(), "shutting down") {
		t.Errorf("afvs (pid %d) did not log a clean shutdown:\n%s", p.Pid, lab.DirectorLog())
	}
	if _, err := api.NewClient(lab.Socket).Status(); err == nil {
		t.Error("control API still answers after SIGTERM")
	}
	_ = netip.Addr{}
}

// TestTunnelFragNeeded: with the director's egress MTU below what the
// client sends, a DF packet cannot be tunnelled; afvs answers with ICMP
// fragmentation-needed carrying the right MTU, the client lowers its path
// MTU, and the large request still goes through.
func TestTunnelFragNeeded(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "tun", TwoInterfaces: true, EgressMTU: 1400, Weights: []int{1}})
	name, err := lab.Post(20000)
	if err != nil {
		t.Fatalf("large POST through a 1400-byte egress MTU failed: %v", err)
	}
	if name != "rs1" {
		t.Fatalf("answered by %q", name)
	}
	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ICMPSent == 0 || st.Drops["frag_needed"] == 0 {
		t.Fatalf("no ICMP fragmentation-needed sent (icmp %d, frag_needed drops %d)", st.ICMPSent, st.Drops["frag_needed"])
	}
	// The client learnt the tunnel's inner MTU, 1400 - 20.
	out, err := testnet.Output("ip", "-n", lab.Client.Name, "route", "get", lab.VIP.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "mtu 1380") {
		t.Fatalf("client's route to the VIP has no learnt MTU 1380:\n%s", out)
	}
	// The same lab, the director's other ICMP answer: Time Exceeded
	// (ttl_e2e_test.go).
	checkTimeExceeded(t, lab)
}

// TestTunnelFragmentsWithoutDF: the same tunnel, but the client sends
// without DF. Its full-size segments are split into two inner fragments,
// each tunnelled; the real server decapsulates them with our XDP program
// and its kernel reassembles the segment, so the large request goes
// through with no ICMP at all.
func TestTunnelFragmentsWithoutDF(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "tun", TwoInterfaces: true, EgressMTU: 1400, Weights: []int{1}})
	name, err := lab.PostNoDF(20000)
	if err != nil {
		t.Fatalf("large POST without DF through a 1400-byte egress MTU failed: %v", err)
	}
	if name != "rs1" {
		t.Fatalf("answered by %q", name)
	}
	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Fragmented == 0 || st.ICMPSent != 0 || st.Drops["too_big"] != 0 {
		t.Fatalf("fragmented %d, icmp sent %d, too_big drops %d: want fragments and no ICMP", st.Fragmented, st.ICMPSent, st.Drops["too_big"])
	}
	t.Logf("%d packets sent as two fragments", st.Fragmented)
}

// TestSorryServer: when health checks find every real server down, the
// sorry server (rs3 here) answers instead, and not before.
func TestSorryServer(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Scheduler: "rr", Weights: []int{1, 1, 1}, SorryLast: true,
		Health: "{type: tcp, interval: 100ms, timeout: 80ms, rise: 1, fall: 2}"})
	if res := lab.Get(20, 2); res.OK != 20 || res.By["rs3"] != 0 {
		t.Fatalf("with its real servers up, the sorry server answered: %+v", res)
	}
	for i := range 2 {
		if err := lab.StopReal(i); err != nil {
			t.Fatal(err)
		}
	}
	// The listing shows what the dataplane has: the sorry server appears
	// once both real servers are found down.
	sorry := lab.RealAddrs[2].String()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		svcs, err := lab.Control().Services()
		if err != nil {
			t.Fatal(err)
		}
		// Listed in the kernel's order, newest first: the sorry server,
		// added last, comes first.
		if rs := svcs[0].Reals; len(rs) == 3 && rs[0].Address == sorry && rs[0].Weight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sorry server 5s after both real servers stopped: %+v", svcs[0].Reals)
		}
	}
	if res := lab.Get(10, 2); res.OK != 10 || res.By["rs3"] != 10 {
		t.Fatalf("with both real servers down: %+v", res)
	}
}

// TestDRSmallerEgressMTU: in the two-interface layout the real servers'
// side may have a smaller MTU than the clients'. DR adds no header, but a
// full-size packet still does not fit: with DF the client is told the
// egress MTU and lowers its path MTU; without DF the packet leaves as two
// fragments that the real server's kernel reassembles.
func TestDRSmallerEgressMTU(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", TwoInterfaces: true, EgressMTU: 1400, Weights: []int{1}})
	if _, err := lab.PostNoDF(20000); err != nil {
		t.Fatalf("large POST without DF through a 1400-byte DR egress failed: %v", err)
	}
	if _, err := lab.Post(20000); err != nil {
		t.Fatalf("large POST with DF through a 1400-byte DR egress failed: %v", err)
	}
	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Fragmented == 0 || st.ICMPSent == 0 || st.Drops["too_big"] != 0 {
		t.Fatalf("fragmented %d, icmp sent %d, too_big %d: want both paths taken", st.Fragmented, st.ICMPSent, st.Drops["too_big"])
	}
	out, err := testnet.Output("ip", "-n", lab.Client.Name, "route", "get", lab.VIP.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "mtu 1400") {
		t.Fatalf("client's route to the VIP has no learnt MTU 1400:\n%s", out)
	}
}

// TestHealthChecks: a real server that stops answering is quiesced by the
// health checks, so new requests all succeed on the others.
func TestHealthChecks(t *testing.T) {
	for _, typ := range []string{"tcp", "http", "exec"} {
		t.Run("type="+typ, func(t *testing.T) { testHealth(t, typ) })
	}
}

func testHealth(t *testing.T, typ string) {
	check := "type: " + typ + ", path: /, status: 200"
	// The exec check is a script that passes while a flag file for the
	// real server exists. rs1 keeps running and only loses its flag, so
	// only the command can quiesce it: that shows the daemon runs it, with
	// the server's address.
	flags := t.TempDir()
	if typ == "exec" {
		check = `type: exec, command: [/bin/sh, -c, "test -e ` + flags + `/up-$AFVS_REAL_ADDR"]`
		for _, a := range []string{"198.18.0.11", "198.18.0.12", "198.18.0.13"} {
			if err := os.WriteFile(filepath.Join(flags, "up-"+a), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A check that forks a shell can miss an 80 ms timeout on a loaded
	// machine; fall 3 with a longer timeout still quiesces within the 5 s
	// the test allows below.
	timing := "interval: 100ms, timeout: 80ms, rise: 1, fall: 2"
	if typ == "exec" {
		timing = "interval: 300ms, timeout: 250ms, rise: 1, fall: 3"
	}
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Scheduler: "rr", Weights: []int{1, 1, 1},
		Health: "{" + check + ", " + timing + "}"})
	if typ == "exec" && lab.RealAddrs[0].String() != "198.18.0.11" {
		t.Fatalf("the lab's first real server is %s; the flag files assume 198.18.0.11", lab.RealAddrs[0])
	}
	// rr spreads the requests evenly only over servers that are up: wait
	// until the first checks have passed for all three.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		svcs, err := lab.Control().Services()
		if err != nil {
			t.Fatal(err)
		}
		up := 0
		for _, r := range svcs[0].Reals {
			if r.Up && r.Weight > 0 {
				up++
			}
		}
		if up == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every real server up 10s after start: %+v", svcs[0].Reals)
		}
	}
	if res := lab.Get(30, 3); res.OK != 30 || res.By["rs1"] != 10 {
		t.Fatalf("before: %+v", res)
	}
	if typ == "exec" {
		if err := os.Remove(filepath.Join(flags, "up-198.18.0.11")); err != nil {
			t.Fatal(err)
		}
	} else if err := lab.StopReal(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		svcs, err := lab.Control().Services()
		if err != nil {
			t.Fatal(err)
		}
		// Listed in the kernel's order, newest first: rs1 is last.
		rs1 := svcs[0].Reals[len(svcs[0].Reals)-1]
		if rs1.Address != lab.RealAddrs[0].String() {
			t.Fatalf("last listed real server is %s, want rs1 (%s): %+v", rs1.Address, lab.RealAddrs[0], svcs[0].Reals)
		}
		if !rs1.Up && rs1.Weight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rs1 not quiesced 5s after it stopped: %+v", rs1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := lab.Get(60, 3)
	if res.OK != 60 || res.By["rs1"] != 0 {
		t.Fatalf("after rs1 went down: %+v", res)
	}
	if !strings.Contains(lab.DirectorLog(), "real server down") {
		t.Errorf("afvs did not log the transition:\n%s", lab.DirectorLog())
	}
}

// TestMultiQueue: a director interface with two RX queues gets two workers,
// each pinned, and traffic spread over them is forwarded correctly.
func TestMultiQueue(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Queues: 2, Scheduler: "wrr", Weights: []int{1, 1, 1}})
	res := lab.Get(300, 6)
	if res.OK != 300 {
		t.Fatalf("%d of 300 answered: %v", res.OK, res.Errors)
	}
	st := quiesced(t, lab)
	if len(st.Workers) != 2 || st.Workers[0].Queue != 0 || st.Workers[1].Queue != 1 {
		t.Fatalf("workers %+v, want one per queue 0 and 1", st.Workers)
	}
	log := lab.DirectorLog()
	for _, q := range []string{"queue=0", "queue=1"} {
		if !strings.Contains(log, q) {
			t.Errorf("no pinning line for %s in the log:\n%s", q, log)
		}
	}
	var rx, drops uint64
	for _, w := range st.Workers {
		rx += w.RX
	}
	for _, n := range st.Drops {
		drops += n
	}
	// Every frame received was either sent on or dropped with a reason
	// (a late segment of a closed connection may be, as no_connection).
	if rx != st.RX || st.TX+drops != st.RX {
		t.Errorf("workers rx %d, total rx %d, tx %d, drops %v", rx, st.RX, st.TX, st.Drops)
	}
	t.Logf("queue 0 rx %d, queue 1 rx %d", st.Workers[0].RX, st.Workers[1].RX)
}

// quiesced reads the director's status once it has stopped changing: the
// last segments of closed connections may still be on their way when the
// client has its answers. Stopped means the same counts over 200 ms (four
// reads), since a busy machine may hold the worker back for a read or two
// with frames still in its ring; it waits at most 10 s.
func quiesced(t *testing.T, lab *testnet.Lab) api.Status {
	t.Helper()
	var prev api.Status
	still := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		if st.RX == prev.RX && st.TX == prev.TX {
			still++
		} else {
			still = 0
		}
		prev = st
		if still >= 4 || time.Now().After(deadline) {
			return st
		}
	}
}
