package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
)

// forwarded reads the director namespace's IP ForwDatagrams counter: the
// packets its kernel routed on.
func forwarded(t *testing.T, lab *testnet.Lab) uint64 {
	t.Helper()
	var v uint64
	err := lab.Director.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i++ {
			if !strings.HasPrefix(lines[i], "Ip: ") || !strings.HasPrefix(lines[i+1], "Ip: ") {
				continue
			}
			names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			for j, n := range names {
				if n == "ForwDatagrams" {
					v, err = strconv.ParseUint(vals[j], 10, 64)
					return err
				}
			}
		}
		t.Fatal("no ForwDatagrams in /proc/net/snmp")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// natHealth checks the NAT tests' real servers every 300 ms. A check
// that has not connected within its timeout (the whole interval) fails,
// and three failures in a row take a server down: a busy machine that
// holds the director back one check's length does not, while a director
// whose health-check replies never reach its kernel takes every server
// down within a second, which natHealthKeptUp reports.
const natHealth = "{interval: 300ms, timeout: 300ms, rise: 1, fall: 3}"

// natHealthKeptUp checks that the health checks kept every real server of
// svcs up throughout: none is down now, and the director never logged
// one going down.
func natHealthKeptUp(t *testing.T, lab *testnet.Lab, svcs []api.Service) {
	t.Helper()
	for _, svc := range svcs {
		for _, r := range svc.Reals {
			if !r.Up {
				t.Errorf("real server %s:%d is down: its health checks failed", r.Address, r.Port)
			}
		}
	}
	if log := lab.DirectorLog(); strings.Contains(log, "real server down") {
		t.Errorf("a real server went down during the test (health-check replies lost?):\n%s", grepLines(log, "real server"))
	}
}

// TestNATEndToEnd runs real HTTP through a VS/NAT service: the real
// servers hold no VIP, listen on 8080 for the service's port 80, and have
// the director as their default route; the director's kernel does not
// forward (ip_forward=0, and its ForwDatagrams counter stays still), so
// every reply the client gets passed afvs: it comes from the director's
// MAC, from VIP:80, and afvsadm -L -n --stats counts it in OutPkts.
// Health checks (TCP to each real server's 8080) keep the servers up:
// their replies, to the director's own address, reach its kernel.
func TestNATEndToEnd(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", Scheduler: "wrr", Weights: []int{1, 2, 3},
		Health: natHealth})
	fwdBefore := forwarded(t, lab)
	capt := startCapture(t, lab, "eth0")

	// A new connection per request: wrr's exact shares.
	const n = 600
	res := lab.Get(n, 6)
	if res.Failed != 0 || res.OK != n {
		t.Fatalf("%d of %d requests failed: %v", res.Failed, n, res.Errors)
	}
	for i, name := range lab.Names {
		want := float64(n) * float64(lab.Opt.Weights[i]) / 6
		if got := float64(res.By[name]); math.Abs(got-want) > 0.02*n {
			t.Errorf("%s (weight %d) answered %v, want %v ± %v", name, lab.Opt.Weights[i], got, want, 0.02*n)
		}
	}
	// Keep-alive: many requests on one connection, one server.
	const k = 300
	ka := lab.GetKeepAlive(k)
	if ka.Failed != 0 || ka.OK != k || len(ka.By) != 1 {
		t.Fatalf("keep-alive: %d of %d answered, by %v: %v", ka.OK, k, ka.By, ka.Errors)
	}
	st := quiesced(t, lab)
	capt.stop()

	dirMAC := macOf(t, lab.Director, "eth0")
	replies := 0
	for mac, c := range capt.macs {
		if mac != dirMAC {
			t.Errorf("client received %d frames from the VIP from MAC %x, not the director's", c, mac)
		}
		replies += c
	}
	if replies+capt.dropped < (n+k)*2 {
		t.Fatalf("captured only %d reply frames (and %d dropped on receipt) for %d requests", replies, capt.dropped, n+k)
	}
	if f := forwarded(t, lab); f != fwdBefore {
		t.Errorf("the director's kernel forwarded %d packets", f-fwdBefore)
	}

	svcs, err := lab.Control().Services()
	if err != nil {
		t.Fatal(err)
	}
	natHealthKeptUp(t, lab, svcs)
	var in, out uint64
	for _, r := range svcs[0].Reals {
		if r.Forward != "Masq" || r.Port != testnet.NATPort {
			t.Errorf("real server %s:%d listed as %s", r.Address, r.Port, r.Forward)
		}
		in += r.Stats.InPkts
		out += r.Stats.OutPkts
	}
	s := svcs[0].Stats
	if s.InPkts != in || s.OutPkts != out || s.Conns != n+1 {
		t.Errorf("service in %d out %d conns %d; real servers in %d out %d; want %d connections", s.InPkts, s.OutPkts, s.Conns, in, out, n+1)
	}
	// Every frame the client saw from the VIP is one the director
	// counted out (the capture may miss a few, never add any; it knows
	// how many were dropped on receipt, by its socket or the device).
	if float64(out) < float64(replies) || float64(out) > 1.01*float64(replies)+float64(capt.dropped) {
		t.Errorf("OutPkts %d, client captured %d replies from the VIP (and %d dropped on receipt)", out, replies, capt.dropped)
		logPath(t, lab, st)
	}
	// Both directions went through the sockets: the director sent what it
	// passed in and what it passed out.
	if st.TX < in+out || st.RX < in+out {
		t.Errorf("director rx %d tx %d, in %d + out %d", st.RX, st.TX, in, out)
	}
	if st.Drops["reply_no_connection"] != 0 {
		t.Errorf("replies without a connection: %d", st.Drops["reply_no_connection"])
	}
	// Prometheus counts the same replies out.
	metrics := scrape(t, lab)
	wantLine := regexp.MustCompile(`(?m)^afvs_service_packets_total\{[^}]*direction="out"[^}]*\} ` + strconv.FormatUint(s.OutPkts, 10) + `$`)
	if !wantLine.MatchString(metrics) {
		t.Errorf("metrics lack afvs_service_packets_total{direction=\"out\"} %d:\n%s", s.OutPkts, grepLines(metrics, "afvs_service_packets_total"))
	}
	listing := mustAfvsadm(t, lab, "-L", "-n", "--stats")
	for _, want := range []string{"TCP  198.19.0.1:80", "-> 198.18.2.11:8080", strconv.FormatUint(s.OutPkts, 10)} {
		if !strings.Contains(listing, want) {
			t.Errorf("afvsadm -L -n --stats lacks %q:\n%s", want, listing)
		}
	}
	// The connection listing names each real server with its own port.
	if conns := mustAfvsadm(t, lab, "-L", "-n", "-c"); !strings.Contains(conns, "198.19.0.1:80") || !strings.Contains(conns, ":8080") {
		t.Errorf("afvsadm -L -n -c does not list the NAT connections with the real servers' port:\n%.2000s", conns)
	}

	checkNATPortUnreachable(t, lab)
	t.Logf("nat: %v, keep-alive %v; director rx %d tx %d; in %d out %d; client saw %d replies (%d dropped on receipt)\n%s", res.By, ka.By, st.RX, st.TX, in, out, replies, capt.dropped, listing)
}

// checkNATPortUnreachable adds a UDP service whose real server has
// nothing on the port. The real server's port unreachable (about client
// -> RIP:5353) comes back through the director translated (about client
// -> VIP:53), so the client's connected socket sees the refusal.
func checkNATPortUnreachable(t *testing.T, lab *testnet.Lab) {
	t.Helper()
	mustAfvsadm(t, lab, "-A", "-u", "198.19.0.1:53", "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-u", "198.19.0.1:53", "-r", lab.RealAddrs[0].String()+":5353", "-m")
	var udpErr error
	err := lab.Client.Do(func() error {
		c, err := net.Dial("udp", "198.19.0.1:53")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 20 { // the first datagrams may meet the table's reload
			if _, err := c.Write([]byte("ping")); err != nil {
				udpErr = err
				return nil
			}
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 16)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				udpErr = err
				return nil
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(udpErr, syscall.ECONNREFUSED) {
		t.Errorf("UDP to a NAT real server's closed port: %v, want the translated port unreachable (connection refused)", udpErr)
	}
}

// scrape reads the director's /metrics from inside its namespace.
func scrape(t *testing.T, lab *testnet.Lab) string {
	t.Helper()
	var body string
	err := lab.Director.Do(func() error {
		c, err := net.Dial("tcp", "127.0.0.1:9469")
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := fmt.Fprint(c, "GET /metrics HTTP/1.0\r\nHost: afvs\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// logPath logs what may explain frames the director counted out and a
// capture never saw: the link counters (drops) of the client, the
// director and the switch, the host's backlog drops, and the director's
// per-socket ring events (kick errors: frames left in a TX ring).
func logPath(t *testing.T, lab *testnet.Lab, st api.Status) {
	t.Helper()
	for _, ns := range []*testnet.NS{lab.Client, lab.Director, lab.Switch} {
		out, err := testnet.Output("ip", "-n", ns.Name, "-s", "link")
		t.Logf("links of %s (%v):\n%s", ns.Name, err, out)
	}
	softnet, err := os.ReadFile("/proc/net/softnet_stat")
	t.Logf("/proc/net/softnet_stat (%v):\n%s", err, softnet)
	t.Logf("director workers: %+v", st.Workers)
}

// TestNATTwoInterfaces runs the LVS manual's VS/NAT layout: afvs receives
// on eth0 (clients) and on eth1 (the real servers, whose default route is
// the director's 198.18.2.1 there), and its kernel forwards nothing. The
// daemon starts with no service and is configured with afvsadm; a real
// server is added while requests flow, and none of them fails. Captures
// on the client and on every real server show both directions leaving
// the director's right interface (requests from eth1's MAC with the
// client's address, to port 8080; replies from eth0's MAC, from VIP:80),
// and afvsadm -L -n --stats counts the replies out.
func TestNATTwoInterfaces(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", TwoInterfaces: true, Scheduler: "wrr", Weights: []int{1, 2, 3}, NoDirector: true,
		Health: natHealth})
	cfg := lab.Config()
	cfg = cfg[:strings.Index(cfg, "services:")] // the operator adds them with afvsadm
	if !strings.Contains(cfg, "interfaces: [eth0, eth1]") {
		t.Fatalf("lab config does not receive on both interfaces:\n%s", cfg)
	}
	if err := os.WriteFile(lab.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	fwdBefore := forwarded(t, lab)
	client := lab.ClientAddr.As4()
	toReal := func(f []byte) bool {
		return f[23] == 6 && [4]byte(f[26:30]) == client && f[36] == testnet.NATPort>>8 && f[37] == testnet.NATPort&0xff
	}
	capt := startCapture(t, lab, "eth0")
	var rcapt []*capture
	for _, ns := range lab.Reals {
		rcapt = append(rcapt, captureIn(t, ns, "eth0", toReal))
	}

	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "wrr")
	for i := range 2 {
		mustAfvsadm(t, lab, "-a", "-t", vip, "-r", lab.RealAddrs[i].String()+":8080", "-m", "-w", strconv.Itoa(lab.Opt.Weights[i]))
	}
	// Requests flow, new connections and a kept-alive one, while the
	// third real server is added.
	var (
		mu      sync.Mutex
		flowing = testnet.Result{By: map[string]int{}}
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, r := range []testnet.Result{lab.Get(30, 3), lab.GetKeepAlive(20)} {
				mu.Lock()
				flowing.OK += r.OK
				flowing.Failed += r.Failed
				flowing.Errors = append(flowing.Errors, r.Errors...)
				for k, v := range r.By {
					flowing.By[k] += v
				}
				mu.Unlock()
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	mustAfvsadm(t, lab, "-a", "-t", vip, "-r", lab.RealAddrs[2].String()+":8080", "-m", "-w", strconv.Itoa(lab.Opt.Weights[2]))
	// Let requests flow a second more, and on a loaded machine until the
	// new server has answered some and 100 have been answered in all
	// (bounded): a busy machine may answer fewer than that in a second.
	for end, least := time.Now().Add(20*time.Second), time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		answered, ok := flowing.By[lab.Names[2]], flowing.OK
		mu.Unlock()
		if answered > 0 && ok >= 100 && time.Now().After(least) {
			break
		}
	}
	close(stop)
	<-done
	if flowing.Failed != 0 || flowing.By[lab.Names[2]] == 0 || flowing.OK < 100 {
		t.Fatalf("while the table changed: %d answered, %d failed, by %v (want no failure and %s answering): %v",
			flowing.OK, flowing.Failed, flowing.By, lab.Names[2], flowing.Errors)
	}

	// A new connection per request: wrr's exact shares.
	const n = 600
	res := lab.Get(n, 6)
	if res.Failed != 0 || res.OK != n {
		t.Fatalf("%d of %d requests failed: %v", res.Failed, n, res.Errors)
	}
	for i, name := range lab.Names {
		want := float64(n) * float64(lab.Opt.Weights[i]) / 6
		if got := float64(res.By[name]); math.Abs(got-want) > 0.02*n {
			t.Errorf("%s (weight %d) answered %v, want %v ± %v", name, lab.Opt.Weights[i], got, want, 0.02*n)
		}
	}
	const k = 300
	ka := lab.GetKeepAlive(k)
	if ka.Failed != 0 || ka.OK != k || len(ka.By) != 1 {
		t.Fatalf("keep-alive: %d of %d answered, by %v: %v", ka.OK, k, ka.By, ka.Errors)
	}
	st := quiesced(t, lab)
	capt.stop()
	for _, c := range rcapt {
		c.stop()
	}

	mac0, mac1 := macOf(t, lab.Director, "eth0"), macOf(t, lab.Director, "eth1")
	replies, requests := 0, 0
	for mac, c := range capt.macs {
		if mac != mac0 {
			t.Errorf("client received %d frames from the VIP from MAC %x, not the director's eth0 (%x)", c, mac, mac0)
		}
		replies += c
	}
	for i, rc := range rcapt {
		for mac, c := range rc.macs {
			if mac != mac1 {
				t.Errorf("%s received %d frames from the client from MAC %x, not the director's eth1 (%x)", lab.Names[i], c, mac, mac1)
			}
			requests += c
		}
	}
	lost := 0 // frames dropped on receipt at the real servers (capture.dropped)
	for _, rc := range rcapt {
		lost += rc.dropped
	}
	total := n + k + flowing.OK
	if replies+capt.dropped < total*2 || requests+lost < total*2 {
		t.Fatalf("captured %d reply and %d request frames (and %d and %d dropped on receipt) for %d requests", replies, requests, capt.dropped, lost, total)
	}
	if f := forwarded(t, lab); f != fwdBefore {
		t.Errorf("the director's kernel forwarded %d packets", f-fwdBefore)
	}

	svcs, err := lab.Control().Services()
	if err != nil {
		t.Fatal(err)
	}
	natHealthKeptUp(t, lab, svcs)
	var in, out uint64
	for _, r := range svcs[0].Reals {
		if r.Forward != "Masq" || r.Port != testnet.NATPort {
			t.Errorf("real server %s:%d listed as %s", r.Address, r.Port, r.Forward)
		}
		in += r.Stats.InPkts
		out += r.Stats.OutPkts
	}
	// Every frame a capture saw is one the director counted (a capture
	// may miss a few, never add any; it knows how many were dropped on
	// receipt).
	if float64(out) < float64(replies) || float64(out) > 1.01*float64(replies)+float64(capt.dropped) {
		t.Errorf("OutPkts %d, client captured %d replies from the VIP (and %d dropped on receipt)", out, replies, capt.dropped)
		logPath(t, lab, st)
	}
	if float64(in) < float64(requests) || float64(in) > 1.01*float64(requests)+float64(lost) {
		t.Errorf("InPkts %d, real servers captured %d requests from the client (and %d dropped on receipt)", in, requests, lost)
	}
	if st.TX < in+out || st.RX < in+out {
		t.Errorf("director rx %d tx %d, in %d + out %d", st.RX, st.TX, in, out)
	}
	for _, reason := range []string{"reply_no_connection", "no_egress", "no_free_frame", "tx_ring_full"} {
		if st.Drops[reason] != 0 {
			t.Errorf("%d frames dropped as %s", st.Drops[reason], reason)
		}
	}
	listing := mustAfvsadm(t, lab, "-L", "-n", "--stats")
	for _, want := range []string{"TCP  198.19.0.1:80", "-> 198.18.2.13:8080", strconv.FormatUint(svcs[0].Stats.OutPkts, 10)} {
		if !strings.Contains(listing, want) {
			t.Errorf("afvsadm -L -n --stats lacks %q:\n%s", want, listing)
		}
	}
	checkNATPortUnreachable(t, lab)
	t.Logf("nat, two interfaces: while changing %v, then %v, keep-alive %v; director rx %d tx %d; in %d out %d; captured %d requests, %d replies\n%s",
		flowing.By, res.By, ka.By, st.RX, st.TX, in, out, requests, replies, listing)
}
