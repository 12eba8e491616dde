package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// serveOnDirector answers HTTP on the VIP's port in the director's own
// namespace, with the name "director", as a web server on an LVS
// director that is also a real server (the LVS manual's local node).
func serveOnDirector(t *testing.T, lab *testnet.Lab) {
	t.Helper()
	if err := lab.Director.IP("addr", "add", lab.VIP.String()+"/32", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := lab.Director.Do(func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(lab.VIP, lab.Port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "director")
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// TestLocalNode: a director with three real servers and itself (its
// address 198.18.0.2) as a fourth, all weight 1, rr: new HTTP
// connections are answered by all four in equal shares, keep-alive
// sessions to the director's own server keep working across
// housekeeping rounds, the steering program passes the local
// connections' later frames to the kernel (no worker sees them), and
// afvsadm lists the director as Local. In both layouts of the LVS
// manual.
func TestLocalNode(t *testing.T) {
	for _, two := range []bool{false, true} {
		name := "one-interface"
		if two {
			name = "two-interfaces"
		}
		t.Run(name, func(t *testing.T) { testLocalNode(t, two) })
	}
}

func testLocalNode(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", TwoInterfaces: two, Weights: []int{1, 1, 1}, NoDirector: true})
	serveOnDirector(t, lab)
	writeLabConfig(t, lab, serviceConfig(lab, "rr", 1, 1, 1)+"      - {address: 198.18.0.2, weight: 1}\n")
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lab, "local node", 1)
	if strings.Contains(lab.DirectorLog(), "the VIP is not an address of this host") {
		t.Errorf("a warning about the VIP, which is on the director's lo:\n%s", lab.DirectorLog())
	}

	const n = 400
	res := lab.Get(n, 4)
	checkShare(t, res, n, map[string]float64{"rs1": 0.25, "rs2": 0.25, "rs3": 0.25, "director": 0.25})
	if res.By["director"] != n/4 {
		t.Errorf("rr: the director answered %d of %d, want %d", res.By["director"], n, n/4)
	}

	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	// Each local connection's first packet went through a worker, and
	// every later one (the rest of the handshake, the request, the
	// FIN and ACKs: at least 3) was passed by the steering program.
	if st.Local.Flows != n/4 || st.Local.Full != 0 || st.Local.Delivered < n/4 || st.Local.Delivered > n/4+n/20 {
		t.Errorf("local path: %+v; want %d flows, none refused, about as many packets delivered", st.Local, n/4)
	}
	if st.Steering["local"] < 3*n/4 {
		t.Errorf("steering passed %d local-node frames, want at least %d", st.Steering["local"], 3*n/4)
	}
	t.Logf("%d connections, %d to the local node: workers received %d frames and handed %d to the director's stack; the steering program passed %d local-node frames to the kernel",
		n, res.By["director"], st.RX, st.Local.Delivered, st.Steering["local"])
	if st.Drops["no_egress"] != 0 || st.Drops["local_deliver"] != 0 {
		t.Errorf("drops: %v", st.Drops)
	}

	// Keep-alive sessions: rr gives 2 of 8 to the director.
	k := startKeepAlive(t, lab, 8)
	k.waitReqs(t, 200)
	time.Sleep(2500 * time.Millisecond) // two housekeeping rounds of the flow map
	r := k.check(t, "keep-alive")
	k.waitReqs(t, r)
	k.halt()
	k.check(t, "keep-alive, after housekeeping")
	local := 0
	for _, s := range k.servers {
		if s == "director" {
			local++
		}
	}
	if local != 2 {
		t.Errorf("keep-alive sessions answered by the director: %d of 8, want 2 (%v)", local, k.servers)
	}

	out := mustAfvsadm(t, lab, "-L", "-n")
	if !strings.Contains(out, "  -> 198.18.0.2:80                Local   1      ") {
		t.Errorf("afvsadm -L -n does not list the director as Local:\n%s", out)
	}
	stats := mustAfvsadm(t, lab, "-L", "-n", "--stats", "--exact")
	if in := statsLine(t, stats, "198.18.0.2:80"); in[0] != n/4+2 || in[1] < 4*(n/4) {
		t.Errorf("local node stats %v: want %d connections and the passed packets counted in:\n%s", in, n/4+2, stats)
	}
}

// TestLocalNodeIPv6: the local node of an IPv6 service. The director
// holds the IPv6 VIP on lo and a process there answers HTTP on
// [VIP]:80; afvsadm -6 adds the service while afvs runs with three real
// servers by DR and the director's own IPv6 address as a fourth. New
// connections are answered by all four in equal shares: the director's
// through the TUN device for their first packet (IPv6 written as is)
// and the steering program's IPv6 flow map for the rest, and afvsadm
// lists the director as Local. In both layouts of the LVS manual.
func TestLocalNodeIPv6(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two_interfaces=%v", two), func(t *testing.T) { testLocalNodeIPv6(t, two) })
	}
}

func testLocalNodeIPv6(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", IPv6: true, Weights: []int{1, 1, 1}, TwoInterfaces: two})
	if err := lab.Director.IP("-6", "addr", "add", testnet.VIP6.String()+"/128", "dev", "lo", "nodad"); err != nil {
		t.Fatal(err)
	}
	// The kernel's addrconf work makes the address usable a moment
	// after it is added.
	var l net.Listener
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err = lab.Director.Do(func() (err error) {
			l, err = net.Listen("tcp", netip.AddrPortFrom(testnet.VIP6, lab.Port).String())
			return err
		})
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "director")
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	vip := netip.AddrPortFrom(testnet.VIP6, lab.Port).String()
	own := netip.MustParseAddr("2001:2::2")
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "rr")
	for _, a := range append(append([]netip.Addr(nil), lab.RealAddrs6...), own) {
		mustAfvsadm(t, lab, "-a", "-t", vip, "-r", netip.AddrPortFrom(a, lab.Port).String(), "-g")
	}
	waitLog(t, lab, "local node", 1)
	if strings.Contains(lab.DirectorLog(), "the VIP is not an address of this host") {
		t.Errorf("a warning about the VIP, which is on the director's lo:\n%s", lab.DirectorLog())
	}
	const n = 400
	res := lab.GetFrom(testnet.VIP6, n, 4)
	if res.Failed != 0 || res.OK != n {
		t.Fatalf("%d of %d requests failed: %v", res.Failed, n, res.Errors)
	}
	checkShare(t, res, n, map[string]float64{"rs1": 0.25, "rs2": 0.25, "rs3": 0.25, "director": 0.25})

	st, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Local.Flows != n/4 || st.Local.Full != 0 || st.Local.Delivered < n/4 || st.Local.Delivered > n/4+n/20 {
		t.Errorf("local path: %+v; want %d flows, none refused, about as many packets delivered", st.Local, n/4)
	}
	if st.Steering["local"] < 3*n/4 {
		t.Errorf("steering passed %d local-node frames, want at least %d", st.Steering["local"], 3*n/4)
	}
	if st.Drops["no_egress"] != 0 || st.Drops["local_deliver"] != 0 {
		t.Errorf("drops: %v", st.Drops)
	}
	if out := mustAfvsadm(t, lab, "-L", "-n"); !strings.Contains(out, "  -> ["+own.String()+"]:80") || !strings.Contains(out, "Local") {
		t.Errorf("afvsadm -L -n does not list the director as Local:\n%s", out)
	}
}
