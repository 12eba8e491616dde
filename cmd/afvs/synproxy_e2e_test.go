package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/internal/testnet"
)

// synCapture counts the TCP SYNs (SYN without ACK) a real server's eth0
// receives, by whether their source is in the flood's spoofed range
// 198.18.128.0/17 or is the lab's client.
type synCapture struct {
	fd       int
	stopping atomic.Bool
	done     chan struct{}
	spoofed  atomic.Uint64
	client   atomic.Uint64
}

func startSYNCapture(t *testing.T, ns *testnet.NS, client netip.Addr) *synCapture {
	t.Helper()
	c := &synCapture{fd: -1, done: make(chan struct{})}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("capture on a real server: %v", err)
	}
	cl := client.As4()
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for !c.stopping.Load() {
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			if err != nil {
				if err == unix.EAGAIN || err == unix.EINTR {
					continue
				}
				return
			}
			f := buf[:n]
			if n < 54 || f[23] != 6 {
				continue
			}
			ihl := int(f[14]&0xf) * 4
			if n < 14+ihl+14 || f[14+ihl+13]&0x12 != 0x02 { // SYN, not SYN-ACK
				continue
			}
			src := [4]byte(f[26:30])
			switch {
			case src[0] == 198 && src[1] == 18 && src[2]&0x80 != 0:
				c.spoofed.Add(1)
			case src == cl:
				c.client.Add(1)
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *synCapture) stop() {
	if c.fd >= 0 {
		c.stopping.Store(true)
		<-c.done
		unix.Close(c.fd)
		c.fd = -1
	}
}

// synProxyFloodRate is the flood's rate, SYNs a second: what one worker
// answers with cookies on this shared machine with room to spare for the
// legitimate traffic (the SYN-ACKs to spoofed sources are delivered to
// the client's namespace by the director's own CPU on veth).
const synProxyFloodRate = 30000

// runAt is run at rate SYNs a second, sent in bursts of 64.
func (f *synFlooder) runAt(stop <-chan struct{}, rate int) {
	burst := make(chan struct{})
	go func() {
		defer close(burst)
		every := time.Second * 64 / time.Duration(rate)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				select {
				case burst <- struct{}{}:
				default: // the sender is behind: skip rather than queue
				}
			}
		}
	}()
	for range burst {
		f.send(64)
	}
}

// TestSYNProxyFlood runs real HTTP through a VS/NAT service with the SYN
// proxy on (defense.syn_proxy), new connections and keep-alive ones,
// then floods it with SYNs from random spoofed sources in
// 198.18.128.0/17 while keep-alive sessions keep making requests and the
// client keeps opening new connections. The real servers, captured on
// their own interfaces, must receive no SYN from a spoofed source (and
// the client's SYNs, proving the capture sees them); every session
// request and at least 99% of the new connections must succeed; and the
// flood must make no connection entries.
func TestSYNProxyFlood(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", NoDirector: true, Weights: []int{1, 1}, Scheduler: "rr"})
	cfg := strings.Replace(lab.Config(), "capacity: 65536", fmt.Sprintf("capacity: %d", floodTable), 1)
	if cfg == lab.Config() {
		t.Fatal("the lab's config has no table capacity to shrink")
	}
	cfg += "frames: 8192\nrings: {rx: 4096, fill: 4096}\ndefense: {syn_proxy: true}\n"
	if err := os.WriteFile(lab.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	caps := make([]*synCapture, len(lab.Reals))
	for i, ns := range lab.Reals {
		caps[i] = startSYNCapture(t, ns, lab.ClientAddr)
	}

	// Before the flood: new connections, and keep-alive.
	const n, k = 200, 100
	if res := lab.Get(n, 4); res.OK != n {
		t.Fatalf("new connections through the proxy: %d of %d answered: %v", res.OK, n, res.Errors)
	}
	if ka := lab.GetKeepAlive(k); ka.OK != k || len(ka.By) != 1 {
		t.Fatalf("keep-alive through the proxy: %d of %d answered, by %v: %v", ka.OK, k, ka.By, ka.Errors)
	}

	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	sessions := make([]*floodSession, 8)
	err := lab.Client.Do(func() error {
		for i := range sessions {
			d := net.Dialer{Timeout: 3 * time.Second}
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
	st0, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}

	fl := newSYNFlooder(t, lab.Client, "eth0", macOf(t, lab.Client, "eth0"), macOf(t, lab.Director, "eth0"), lab.VIP, lab.Port, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); fl.runAt(stop, synProxyFloodRate) }()
	var sessOK, sessFail, newOK, newFail atomic.Int64
	var mu sync.Mutex
	var errs []string
	note := func(e ...string) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 8 {
			errs = append(errs, e...)
		}
	}
	for _, s := range sessions {
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
					note("session: " + err.Error())
					return
				}
				sessOK.Add(1)
			}
		}()
	}
	for range floodOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
				note(res.Errors...)
			}
		}()
	}
	time.Sleep(floodFor)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond) // let the last frames through
	for _, c := range caps {
		c.stop()
	}
	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	var spoofed, client uint64
	for _, c := range caps {
		spoofed += c.spoofed.Load()
		client += c.client.Load()
	}
	sent := fl.sent.Load()
	total := newOK.Load() + newFail.Load()
	var ringFull uint64
	for i, w := range st.Workers {
		ringFull += w.RxRingFull - st0.Workers[i].RxRingFull
	}
	t.Logf("kernel_rx_ring_full %d", ringFull)
	t.Logf("flood: %d SYNs in %.1fs = %.0f/s offered; real servers received %d SYNs from spoofed sources, %d from the client; "+
		"sessions %d ok %d failed; new connections %d of %d ok; table %d entries; drops %v; errors %v",
		sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), spoofed, client, sessOK.Load(), sessFail.Load(),
		newOK.Load(), total, st.Table.Entries, st.Drops, errs)

	if spoofed != 0 {
		t.Errorf("the real servers received %d SYNs from spoofed sources", spoofed)
	}
	// n new connections, the keep-alive one, the sessions and the
	// flood's new connections each sent its real server one SYN.
	if client < uint64(n+1+len(sessions))+uint64(newOK.Load()) {
		t.Errorf("the real servers' captures saw only %d SYNs from the client", client)
	}
	if sessFail.Load() != 0 || sessOK.Load() < int64(len(sessions)) {
		t.Errorf("keep-alive sessions during the flood: %d requests ok, %d failed: %v", sessOK.Load(), sessFail.Load(), errs)
	}
	if total < 100 || float64(newOK.Load()) < 0.99*float64(total) {
		t.Errorf("new connections during the flood: %d of %d succeeded, want at least 99%% of at least 100: %v", newOK.Load(), total, errs)
	}
	if sent < 20000 {
		t.Errorf("the flood offered only %d SYNs", sent)
	}
	// The flood made no entries: what the table holds is the client's.
	if max := uint64(n + 1 + len(sessions) + int(total) + 16); st.Table.Entries > max {
		t.Errorf("%d connection entries after the flood, more than the client's %d", st.Table.Entries, max)
	}
	// Each flood SYN that reached the worker got a cookie; each new
	// connection was opened and established through the proxy.
	sp, sp0 := st.SYNProxy, st0.SYNProxy
	t.Logf("proxy: %+v (before the flood %+v)", sp, sp0)
	if cookies := sp.Cookies - sp0.Cookies; cookies < sent/2 {
		t.Errorf("%d cookies sent for %d flood SYNs", cookies, sent)
	}
	if opened := sp.Opened - sp0.Opened; opened < uint64(newOK.Load()) || sp.Established < sp.Opened-uint64(newFail.Load()) {
		t.Errorf("proxy counters %+v before the flood %+v, for %d new connections", sp, sp0, newOK.Load())
	}
	if metrics := scrape(t, lab); !strings.Contains(metrics, fmt.Sprintf("afvs_syn_proxy_total{event=\"cookies\"} %d", sp.Cookies)) {
		t.Errorf("metrics lack afvs_syn_proxy_total{event=\"cookies\"} %d:\n%s", sp.Cookies, grepLines(metrics, "afvs_syn_proxy"))
	}
	if st.Drops["synproxy_bad_cookie"]-st0.Drops["synproxy_bad_cookie"] != 0 {
		t.Errorf("ACKs with bad cookies from a client that sent none: %d", st.Drops["synproxy_bad_cookie"])
	}
}
