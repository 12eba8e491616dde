package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/internal/header"
	"github.com/afvs/afvs/internal/testnet"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// synFlooder sends TCP SYNs to a VIP from a raw AF_PACKET socket, as fast
// as one goroutine can, each from a random source in 198.18.128.0/17 (or,
// one in heavyEvery, from one of a few heavy sources) and a random port.
// Only the source address and port and the two checksums change from a
// gopacket-built template.
type synFlooder struct {
	fd       int
	template []byte
	heavy    []netip.Addr
	sent     atomic.Uint64
	failed   atomic.Uint64
	buf      []byte     // the frame being varied (send)
	rng      *rand.Rand // send's sources and ports
}

// heavyEvery: one SYN in this many comes from a heavy source.
const heavyEvery = 10

func newSYNFlooder(t *testing.T, ns *testnet.NS, dev string, src, dst [6]byte, vip netip.Addr, port uint16, heavy []netip.Addr) *synFlooder {
	t.Helper()
	f := &synFlooder{heavy: heavy, fd: -1}
	f.template = ts.Build(t, ts.Eth(src[:], dst[:]), ts.IPv4(netip.MustParseAddr("198.18.128.1"), vip), ts.TCP(40000, port, ts.SYN))
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		f.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("flood socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(f.fd) })
	return f
}

// run floods until stop is closed.
func (f *synFlooder) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		f.send(256)
	}
}

// send sends n SYNs.
func (f *synFlooder) send(count int) {
	if f.buf == nil {
		f.buf = append([]byte(nil), f.template...)
		f.rng = rand.New(rand.NewPCG(7, 11))
	}
	b, rng := f.buf, f.rng
	ip := header.IPv4(b[14:34])
	tcp := b[34:]
	for n := f.sent.Load() + f.failed.Load(); count > 0; n, count = n+1, count-1 {
		old := ip.Src()
		var src [4]byte
		if n%heavyEvery == 0 && len(f.heavy) > 0 {
			src = f.heavy[rng.IntN(len(f.heavy))].As4()
		} else {
			r := rng.Uint32()
			src = [4]byte{198, 18, 128 | byte(r>>8)&0x7f, byte(r)}
		}
		copy(b[14+12:14+16], src[:])
		ipc := header.ChecksumUpdateAddr(uint16(b[24])<<8|uint16(b[25]), old, src)
		b[24], b[25] = byte(ipc>>8), byte(ipc)
		tc := header.ChecksumUpdateAddr(uint16(tcp[16])<<8|uint16(tcp[17]), old, src)
		oldPort := uint16(tcp[0])<<8 | uint16(tcp[1])
		newPort := uint16(1024 + rng.IntN(60000))
		tcp[0], tcp[1] = byte(newPort>>8), byte(newPort)
		tc = header.ChecksumUpdate16(tc, oldPort, newPort)
		tcp[16], tcp[17] = byte(tc>>8), byte(tc)
		if _, err := unix.Write(f.fd, b); err != nil {
			f.failed.Add(1)
			continue
		}
		f.sent.Add(1)
	}
}

// floodSession is one client's HTTP/1.1 connection to the VIP, reused for
// every request.
type floodSession struct {
	c net.Conn
	r *bufio.Reader
}

func (k *floodSession) get() error {
	_ = k.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(k.c, "GET / HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return err
}

// rssKB reads a process's resident set size.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func serviceConns(t *testing.T, lab *testnet.Lab) uint64 {
	t.Helper()
	svcs, err := lab.Control().Services()
	if err != nil || len(svcs) != 1 {
		t.Fatalf("services: %v %v", svcs, err)
	}
	return svcs[0].Stats.Conns
}

// Flood test settings: a small table, the limits it enforces, and how
// long the flood lasts.
const (
	floodTable      = 4096
	floodPerSource  = 100
	floodPerService = 2000
	floodBurst      = 100
	floodFor        = 5 * time.Second
	floodSessions   = 16
	floodOpeners    = 3 // the known client's goroutines opening new connections
	floodNewEvery   = 50 * time.Millisecond
	floodMinNew     = 100              // new connections the known client must have tried
	floodMaxFor     = 30 * time.Second // the longest the flood runs to get them
)

// TestSYNFlood floods the director with SYNs from random sources (and a
// few heavy ones) as fast as the machine sends them, against a 4096-entry
// table, while keep-alive sessions established before the flood keep
// making requests and a known client keeps opening new connections.
// Every request on an established session and at least 99% of the new
// connections must succeed, the new connections the director passes to
// the real servers must stay within the service's SYN rate (plus the
// known client's), the heavy sources must end up in the XDP blocklist,
// and the director's memory must not grow with the flood.
func TestSYNFlood(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", NoDirector: true, Weights: []int{1, 1}, Scheduler: "rr"})
	cfg := strings.Replace(lab.Config(), "capacity: 65536", fmt.Sprintf("capacity: %d", floodTable), 1)
	if cfg == lab.Config() {
		t.Fatal("the lab's config has no table capacity to shrink")
	}
	cfg += fmt.Sprintf("frames: 8192\nrings: {rx: 4096, fill: 4096}\n"+
		"ipvs: {drop_entry: 1, secure_tcp: 1, amemthresh: %d}\n"+
		"defense: {syn_rate_per_source: %d, syn_rate_per_service: %d, burst: %d, block_factor: 10, block_for: 60s}\n",
		floodTable/8, floodPerSource, floodPerService, floodBurst)
	if err := os.WriteFile(lab.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	if res := lab.Get(10, 2); res.OK != 10 {
		t.Fatalf("before the flood: %d of 10 answered: %v", res.OK, res.Errors)
	}

	// Keep-alive sessions, established before the flood. Their
	// handshakes also make the client a known one.
	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	sessions := make([]*floodSession, floodSessions)
	err := lab.Client.Do(func() error {
		for i := range sessions {
			d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{Port: 61000 + i}}
			c, err := d.Dial("tcp", vip)
			if err != nil {
				return err
			}
			sessions[i] = &floodSession{c: c, r: bufio.NewReader(c)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sessions {
		defer s.c.Close()
		if err := s.get(); err != nil {
			t.Fatalf("session %d before the flood: %v", i, err)
		}
	}

	pid := lab.DirectorProcess().Pid
	rssBefore := rssKB(t, pid)
	conns0 := serviceConns(t, lab)
	st0, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	heavy := []netip.Addr{netip.MustParseAddr("198.18.100.1"), netip.MustParseAddr("198.18.100.2")}
	fl := newSYNFlooder(t, lab.Client, "eth0", macOf(t, lab.Client, "eth0"), macOf(t, lab.Director, "eth0"), lab.VIP, lab.Port, heavy)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); fl.run(stop) }()

	var sessOK, sessFail atomic.Int64
	var sessErrs sync.Map
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				if err := s.get(); err != nil {
					sessFail.Add(1)
					sessErrs.Store(i, err.Error())
					return // the session is gone
				}
				sessOK.Add(1)
			}
		}()
	}
	var newOK, newFail atomic.Int64
	var newErrs []string
	var mu sync.Mutex
	// openNew opens a new connection, makes one request on it and closes
	// it, every floodNewEvery, until the flood stops.
	openNew := func() {
		tick := time.NewTicker(floodNewEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			res := lab.Get(1, 1)
			newOK.Add(int64(res.OK))
			newFail.Add(int64(res.Failed))
			mu.Lock()
			if len(newErrs) < 5 {
				newErrs = append(newErrs, res.Errors...)
			}
			mu.Unlock()
		}
	}
	for range floodOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			openNew()
		}()
	}
	// The flood lasts floodFor, and on a machine too busy for the
	// openers to have made floodMinNew attempts by then, until they have
	// (at most floodMaxFor): the 99% below needs that many.
	time.Sleep(floodFor)
	for end := start.Add(floodMaxFor); newOK.Load()+newFail.Load() < floodMinNew && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	// Let the last frames through: SYNs still queued in the receive ring
	// when the flood stopped are admitted by the service's rate after
	// elapsed, so the window the rate applies to ends when the worker has
	// taken its last frame. A busy machine may hold the worker back for
	// any length with frames still queued, so no pause of its rx count
	// says the ring is empty; the counts do: every frame the XDP program
	// redirected since st0 is one the workers received or their sockets
	// dropped (ring full, or no fill). The window ends at the last move of
	// the rx count seen by then, at most 10 s on.
	window := elapsed
	var rxStart uint64
	for _, w := range st0.Workers {
		rxStart += w.RX
	}
	drained := false
	for last, end := ^uint64(0), time.Now().Add(10*time.Second); !drained; {
		time.Sleep(50 * time.Millisecond)
		sNow, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		var rxNow, lost uint64
		for i, w := range sNow.Workers {
			rxNow += w.RX
			// rx_dropped counts a frame dropped for an empty fill ring
			// too; rx_ring_full, one the full ring refused.
			lost += w.RxDropped + w.RxRingFull - st0.Workers[i].RxDropped - st0.Workers[i].RxRingFull
		}
		if rxNow != last {
			last, window = rxNow, time.Since(start)
		}
		redirected := sNow.Steering["redirected"] - st0.Steering["redirected"]
		drained = rxNow-rxStart+lost >= redirected
		if drained {
			t.Logf("the workers took their last frame %.3fs after the flood started: %d taken and %d dropped by their sockets of the %d redirected", window.Seconds(), rxNow-rxStart, lost, redirected)
		} else if time.Now().After(end) {
			t.Fatalf("10s after the flood the workers have taken %d frames and their sockets dropped %d of the %d the XDP program redirected to them", rxNow-rxStart, lost, redirected)
		}
	}
	conns := serviceConns(t, lab) - conns0
	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	rssAfter := rssKB(t, pid)
	var ringFull, fillEmpty, rx uint64
	for i, w := range st.Workers {
		ringFull += w.RxRingFull - st0.Workers[i].RxRingFull
		fillEmpty += w.RxFillRingEmpty - st0.Workers[i].RxFillRingEmpty
		rx += w.RX - st0.Workers[i].RX
	}
	sent := fl.sent.Load()
	blocked := st.Steering["blocked"] - st0.Steering["blocked"]
	t.Logf("flood: %d SYNs in %.1fs = %.0f/s offered (%d send errors); steering blocked %d in XDP; workers received %d; kernel_rx_ring_full %d (%.1f%% of offered), rx_fill_ring_empty %d",
		sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), fl.failed.Load(), blocked, rx, ringFull, 100*float64(ringFull)/float64(max(sent, 1)), fillEmpty)
	t.Logf("syn drops %v; defence %+v; table %d/%d entries, evicted %d", st.SYNDrops, *st.Defense, st.Table.Entries, st.Table.Capacity, st.Table.Evicted)
	t.Logf("sessions: %d requests ok, %d failed; new connections: %d ok, %d failed %v; connections passed to the real servers %d (%.0f/s); director RSS %d -> %d kB",
		sessOK.Load(), sessFail.Load(), newOK.Load(), newFail.Load(), newErrs, conns, float64(conns)/elapsed.Seconds(), rssBefore, rssAfter)

	if sessFail.Load() != 0 {
		var errs []string
		sessErrs.Range(func(k, v any) bool { errs = append(errs, fmt.Sprintf("%v: %v", k, v)); return true })
		t.Errorf("%d keep-alive sessions failed during the flood: %v", sessFail.Load(), errs)
	}
	if sessOK.Load() < int64(floodSessions) {
		t.Errorf("only %d requests on the keep-alive sessions during the flood", sessOK.Load())
	}
	total := newOK.Load() + newFail.Load()
	if total < floodMinNew || float64(newOK.Load()) < 0.99*float64(total) {
		t.Errorf("new connections from the known client: %d of %d succeeded, want at least 99%% of at least %d: %v", newOK.Load(), total, floodMinNew, newErrs)
	}
	// The service's rate and burst, plus the known client's connections,
	// which its completed handshakes exempt from the service's rate.
	limit := uint64(floodPerService*window.Seconds()) + floodBurst + uint64(total) + uint64(floodSessions)
	if conns > limit {
		t.Errorf("%d connections passed to the real servers in %.3fs (the flood's %.3fs and the ring's drain), over the service's limit %d", conns, window.Seconds(), elapsed.Seconds(), limit)
	}
	if sent < 3*limit {
		t.Errorf("the flood offered only %d SYNs, not enough to exceed the limits several times over", sent)
	}
	if blocked == 0 {
		t.Error("no frame of the heavy sources was dropped by the XDP blocklist")
	}
	if st.SYNDrops["syn_rate_service"] == 0 {
		t.Errorf("no SYN dropped for the service's rate: %v", st.SYNDrops)
	}
	if grow := rssAfter - rssBefore; grow > 64<<10 {
		t.Errorf("director RSS grew by %d kB during the flood", grow)
	}
}
