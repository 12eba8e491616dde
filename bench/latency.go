package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/testnet"
)

// LatencyPath is one path of the latency scenario: round-trip times of
// UDP requests from the generator's namespace answered by a server in the
// sink's, at low load (one request at a time, LatencyGap apart). The
// direct path's requests alternate with every other path's; its row sums
// them all.
type LatencyPath struct {
	// Path is direct (the kernel routes the request to the server's own
	// address), afvs-dr (afvs forwards it to the VIP in VS/DR mode) or
	// kernel-xdp-dr (the in-kernel XDP load balancer does).
	Path string `json:"path"`
	// Poll is afvs's poll mode for afvs-dr, and BusyPoll the busy-poll
	// socket options its worker has, as /v1/status reports them.
	Poll     string `json:"poll,omitempty"`
	BusyPoll string `json:"busy_poll,omitempty"`
	// Samples is the requests answered, Lost those that were not within
	// latencyTimeout.
	Samples int `json:"samples"`
	Lost    int `json:"lost"`
	// P50, P90 and P99 are round-trip percentiles in microseconds.
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
	// Added50, Added90 and Added99 are the percentiles less those of the
	// direct-path requests sent alternately with this path's: what the
	// load balancer adds.
	Added50 *float64 `json:"added_p50_us,omitempty"`
	Added90 *float64 `json:"added_p90_us,omitempty"`
	Added99 *float64 `json:"added_p99_us,omitempty"`
	// IdleCPU is the CPU time afvs's worker threads used over an idle
	// interval after the requests, as a fraction of one CPU (from
	// /proc/PID/task/TID/stat, 10 ms ticks).
	IdleCPU *float64 `json:"idle_cpu,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// LatencyGap is the pause between one answered request and the next: the
// load stays low enough that the path is idle when each request arrives.
const LatencyGap = time.Millisecond

// latencyTimeout is how long a request waits for its answer before it
// counts as lost.
const latencyTimeout = 200 * time.Millisecond

// ServerAddr is the sink namespace's address in the latency scenario, as
// in the rate scenarios; the server also answers on the VIP, held on lo.
var ServerAddr = SinkAddr

// LatencyPolls are the poll modes the latency scenario runs afvs in, in
// order (it reloads afvs between them). Adaptive runs twice: with the
// default spin, shorter than LatencyGap, so the worker sleeps before each
// request; and with a spin longer than the gap, so it polls through the
// whole run and still sleeps once the requests stop.
var LatencyPolls = []director.PollConfig{
	{Mode: director.PollAdaptive, Spin: director.DefaultSpin},
	{Mode: director.PollAdaptive, Spin: 2 * LatencyGap},
	{Mode: director.PollBusy},
	{Mode: director.PollSleep},
}

func pollYAML(c director.PollConfig) string {
	return fmt.Sprintf("{mode: %s, spin: %s}", c.Mode, c.Spin)
}

// runLatency measures every latency path on one network: the direct path
// first, then afvs in each poll mode, then the kernel XDP load balancer.
// A path that fails carries its error; the others still run.
func runLatency(o Options) (paths []LatencyPath, err error) {
	t, err := newTopology(string(Latency), 1, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove namespaces: %w", cerr))
		}
	}()
	stopServer, err := latencyNetwork(t)
	if err != nil {
		return nil, err
	}
	defer stopServer()
	n := max(int(o.Duration/LatencyGap), 50)

	// Every path's requests alternate with requests on the direct path;
	// the direct row is all of those.
	var directRTTs []time.Duration
	paths = append(paths, LatencyPath{Path: "direct"})
	paths = append(paths, latencyAFVS(t, o, n, &directRTTs)...)
	kx := LatencyPath{Path: "kernel-xdp-dr"}
	if _, stop, err := startKernelXDP(t, "dr", 16); err != nil {
		kx.Error = err.Error()
	} else {
		measureLatency(t, VIP, n, &kx, &directRTTs)
		if err := stop(); err != nil && kx.Error == "" {
			kx.Error = err.Error()
		}
	}
	paths = append(paths, kx)
	d := &paths[0]
	if d.Samples = len(directRTTs); d.Samples == 0 {
		d.Error = "no path was measured"
	} else {
		d.P50, d.P90, d.P99 = percentile(directRTTs, 0.50), percentile(directRTTs, 0.90), percentile(directRTTs, 0.99)
	}
	return paths, nil
}

// latencyAFVS runs afvs once and measures it in every poll mode of
// LatencyPolls, reloading its config between them.
func latencyAFVS(t *topology, o Options, n int, direct *[]time.Duration) []LatencyPath {
	var out []LatencyPath
	fail := func(err error) []LatencyPath {
		for _, c := range LatencyPolls[len(out):] {
			out = append(out, LatencyPath{Path: "afvs-dr", Poll: c.String(), Error: err.Error()})
		}
		return out
	}
	if o.AFVS == "" {
		return fail(errors.New("needs the afvs binary path (Options.AFVS)"))
	}
	d, reload, stop, err := startDirectorPoll(t, o.AFVS, "dr", 16, pollYAML(LatencyPolls[0]))
	if err != nil {
		return fail(err)
	}
	defer func() { _ = stop() }()
	client := api.NewClient(d.Socket)
	for i, c := range LatencyPolls {
		p := LatencyPath{Path: "afvs-dr", Poll: c.String()}
		if i > 0 {
			if err := reload(pollYAML(c)); err != nil {
				return fail(fmt.Errorf("reload poll %s: %w", c, err))
			}
		}
		if _, err := awaitPoll(client, c.String()); err != nil {
			return fail(fmt.Errorf("%w\nafvs log: %s", err, tail(d)))
		}
		measureLatency(t, VIP, n, &p, direct)
		// The worker sets its socket's busy-poll options at its first
		// turn in the new mode: read them once it has served requests.
		if st, err := client.Status(); err == nil && len(st.Workers) > 0 {
			p.BusyPoll = st.Workers[0].BusyPoll
		}
		if p.Error == "" {
			if cpu, err := idleCPU(d.Process().Pid, idleWindow(o.Duration)); err != nil {
				p.Error = fmt.Sprintf("idle cpu: %v", err)
			} else {
				p.IdleCPU = &cpu
			}
		}
		out = append(out, p)
	}
	return out
}

// awaitPoll waits until every worker of afvs reports poll mode want.
func awaitPoll(c *api.Client, want string) (api.Status, error) {
	var st api.Status
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err = c.Status()
		if err != nil {
			continue
		}
		ok := len(st.Workers) > 0
		for _, w := range st.Workers {
			ok = ok && w.Poll == want
		}
		if ok {
			return st, nil
		}
	}
	if err != nil {
		return st, fmt.Errorf("afvs status: %w", err)
	}
	return st, fmt.Errorf("afvs workers still not in poll mode %q after 5s: %+v", want, st.Workers)
}

// idleWindow is how long idleCPU watches: the scenario's duration, within
// bounds that keep the 10 ms ticks meaningful and the run short.
func idleWindow(d time.Duration) time.Duration {
	return min(max(d, 300*time.Millisecond), 2*time.Second)
}

// idleCPU is the CPU time the worker threads of process pid use over
// window, after a pause longer than any spin, as a fraction of one CPU.
func idleCPU(pid int, window time.Duration) (float64, error) {
	time.Sleep(50 * time.Millisecond)
	tids, err := director.WorkerThreads(pid)
	if err != nil {
		return 0, err
	}
	if len(tids) == 0 {
		return 0, fmt.Errorf("process %d has no thread named %s", pid, director.WorkerThreadName)
	}
	sum := func() (time.Duration, error) {
		var s time.Duration
		for _, tid := range tids {
			c, err := director.ThreadCPU(pid, tid)
			if err != nil {
				return 0, err
			}
			s += c
		}
		return s, nil
	}
	c0, err := sum()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(window)
	c1, err := sum()
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(time.Since(t0)), nil
}

// latencyNetwork turns a scenario topology into the request/response
// network: routes both ways through the director's kernel, the VIP on the
// server's lo, the decapsulating XDP program on the server's interface
// (it passes plain frames, and a veth must run XDP to take frames another
// program redirects to it), and UDP servers echoing on the VIP and the
// server's address. The returned function stops the servers.
func latencyNetwork(t *topology) (stop func(), err error) {
	steps := []struct {
		ns   *testnet.NS
		args []string
	}{
		{t.gen, []string{"route", "add", "default", "via", DirInAddr.String()}},
		{t.sink, []string{"route", "add", "default", "via", DirOutAddr.String()}},
		{t.sink, []string{"addr", "add", VIP.String() + "/32", "dev", "lo"}},
	}
	for _, s := range steps {
		if err := s.ns.IP(s.args...); err != nil {
			return nil, err
		}
	}
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf." + ingressName + ".rp_filter", "0"},
		{"net.ipv4.conf." + egressName + ".rp_filter", "0"},
	} {
		if err := t.dir.Sysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	// veth TX checksum offload leaves the client's UDP checksums partial,
	// which the kernel's forwarding path completes and a director that
	// takes frames with AF_XDP or XDP forwards broken.
	if err := t.gen.Do(func() error { return nic.DisableTxChecksum(ingressName) }); err != nil {
		return nil, err
	}
	decap, err := xdpprog.LoadDecap46([]netip.Addr{VIP})
	if err != nil {
		return nil, err
	}
	var att xdpprog.Attachment
	if err := t.sink.Do(func() (err error) { att, err = decap.Attach(t.sinkIf.index, xdpprog.ModeAuto); return err }); err != nil {
		decap.Close()
		return nil, fmt.Errorf("attach decap to the server: %w", err)
	}
	var quit atomic.Bool
	var wg sync.WaitGroup
	var fds []int
	stop = func() {
		quit.Store(true)
		wg.Wait()
		for _, fd := range fds {
			unix.Close(fd)
		}
		att.Close()
		decap.Close()
	}
	for _, a := range []netip.Addr{VIP, ServerAddr} {
		var fd int
		err := t.sink.Do(func() (err error) {
			fd, err = udpSocket()
			if err != nil {
				return err
			}
			return unix.Bind(fd, &unix.SockaddrInet4{Addr: a.As4(), Port: int(VIPPort)})
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("echo server on %s: %w", a, err)
		}
		fds = append(fds, fd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			echo(fd, &quit)
		}()
	}
	return stop, nil
}

// udpSocket is a blocking UDP socket whose receives time out after
// latencyTimeout, so loops see a stop flag.
func udpSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(int64(latencyTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// echo answers every datagram on fd with its own bytes until quit. It
// blocks in recvfrom on its own thread, as a simple server would.
func echo(fd int, quit *atomic.Bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 2048)
	for !quit.Load() {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || from == nil {
			continue
		}
		_ = unix.Sendto(fd, buf[:n], 0, from)
	}
}

// measureLatency sends n requests from the generator's namespace to
// dst:VIPPort and n to the server's own address (the direct path), one at
// a time and alternating, so that both see the same moments of the
// machine's load. It fills p's percentiles and, against the direct
// requests of the same run, its added latency, or its error; it appends
// the direct round trips to direct.
func measureLatency(t *topology, dst netip.Addr, n int, p *LatencyPath, direct *[]time.Duration) {
	var fds [2]int
	for i, a := range []netip.Addr{dst, ServerAddr} {
		err := t.gen.Do(func() (err error) {
			fds[i], err = udpSocket()
			if err != nil {
				return err
			}
			return unix.Connect(fds[i], &unix.SockaddrInet4{Addr: a.As4(), Port: int(VIPPort)})
		})
		if err != nil {
			p.Error = fmt.Sprintf("client socket to %s: %v", a, err)
			return
		}
		defer unix.Close(fds[i])
	}
	rtts, lost, err := pingPong(fds, n)
	p.Samples, p.Lost = len(rtts[0]), lost[0]
	*direct = append(*direct, rtts[1]...)
	switch {
	case err != nil:
		p.Error = err.Error()
	case len(rtts[0]) < n/2:
		p.Error = fmt.Sprintf("%d of %d requests to %s answered", len(rtts[0]), n, dst)
	case len(rtts[1]) < n/2:
		p.Error = fmt.Sprintf("direct path: %d of %d requests to %s answered", len(rtts[1]), n, ServerAddr)
	}
	if p.Error != "" {
		return
	}
	p.P50, p.P90, p.P99 = percentile(rtts[0], 0.50), percentile(rtts[0], 0.90), percentile(rtts[0], 0.99)
	if dst != ServerAddr {
		a50, a90, a99 := p.P50-percentile(rtts[1], 0.50), p.P90-percentile(rtts[1], 0.90), p.P99-percentile(rtts[1], 0.99)
		p.Added50, p.Added90, p.Added99 = &a50, &a90, &a99
	}
}

// pingPong sends n numbered requests on each connected socket of fds,
// alternating, each after the answer to the last (or its timeout) and a
// pause of LatencyGap, and returns the round trips of those answered and
// the count lost, by socket. It runs on a locked thread so that the
// timing is the kernel's wake-up, not the scheduler's.
func pingPong(fds [2]int, n int) (rtts [2][]time.Duration, lost [2]int, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	req := make([]byte, 18) // a 60-byte frame with the headers
	resp := make([]byte, 2048)
	for i := range rtts {
		rtts[i] = make([]time.Duration, 0, n)
	}
	// A few requests first, unmeasured: ARP, the first connection entry
	// and cold caches are not what this measures.
	for seq := uint64(0); seq < uint64(n)+10; seq++ {
		for i, fd := range fds {
			binary.BigEndian.PutUint64(req, seq)
			t0 := time.Now()
			if _, err := unix.Write(fd, req); err != nil {
				return rtts, lost, fmt.Errorf("send request %d: %w", seq, err)
			}
			for {
				m, err := unix.Read(fd, resp)
				if err != nil {
					if err == unix.EINTR {
						continue
					}
					lost[i]++
					break
				}
				if m < 8 || binary.BigEndian.Uint64(resp) != seq {
					continue // a late answer to an earlier request
				}
				if seq >= 10 {
					rtts[i] = append(rtts[i], time.Since(t0))
				}
				break
			}
			// A path that answers nothing fails in a few timeouts, not n.
			if lost[i] > 10 && lost[i] > len(rtts[i]) {
				return rtts, lost, fmt.Errorf("%d of the first %d requests to socket %d unanswered (%s each)", lost[i], seq+1, i, latencyTimeout)
			}
			time.Sleep(LatencyGap)
		}
	}
	return rtts, lost, nil
}

// percentile is the q-quantile of ds in microseconds (nearest rank).
func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i]) / float64(time.Microsecond)
}
