package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		Health: "{interval: 300ms, timeout: 200ms, rise: 1, fall: 2}"})
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
	if replies < (n+k)*2 {
		t.Fatalf("captured only %d reply frames for %d requests", replies, n+k)
	}
	if f := forwarded(t, lab); f != fwdBefore {
		t.Errorf("the director's kernel forwarded %d packets", f-fwdBefore)
	}

	svcs, err := lab.Control().Services()
	if err != nil {
		t.Fatal(err)
	}
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
	// counted out (the capture may miss a few, never add any).
	if float64(out) < float64(replies) || float64(out) > 1.01*float64(replies) {
		t.Errorf("OutPkts %d, client captured %d replies from the VIP", out, replies)
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

	// ICMP: a UDP service whose real server has nothing on the port. The
	// real server's port unreachable (about client -> RIP:5353) comes back
	// through the director translated (about client -> VIP:53), so the
	// client's connected socket sees the refusal.
	mustAfvsadm(t, lab, "-A", "-u", "198.19.0.1:53", "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-u", "198.19.0.1:53", "-r", lab.RealAddrs[0].String()+":5353", "-m")
	var udpErr error
	err = lab.Client.Do(func() error {
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
	t.Logf("nat: %v, keep-alive %v; director rx %d tx %d; in %d out %d; client saw %d replies\n%s", res.By, ka.By, st.RX, st.TX, in, out, replies, listing)
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
