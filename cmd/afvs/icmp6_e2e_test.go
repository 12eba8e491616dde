package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/internal/testnet"
)

// The IPv6 reply router's addresses: on the lab's bridge, and on its own
// link to the client's third leg (MTU 1280, IPv6's minimum).
var (
	router6Bridge = netip.MustParseAddr("2001:2::3")
	router6Leg    = netip.MustParseAddr("2001:2:9::1")
	client6Leg    = netip.MustParseAddr("2001:2:9::10")
)

// addReplyRouter6 puts a router between the real servers and the client
// for IPv6 replies, as the Internet is between a real server and a remote
// client: namespace "rt6" on the lab's bridge and on a 1280-byte link to
// the client's eth2. The client sends from its leg's address to the VIP
// through the director as before; the real servers route the leg's prefix
// through the router, which routes the VIP to the director. A full-size
// reply does not fit the router's link: the router answers with ICMPv6
// Packet Too Big to the reply's source, the VIP, and so to the director.
func addReplyRouter6(t *testing.T, lab *testnet.Lab) {
	t.Helper()
	rt, err := lab.Net.NS("rt6")
	if err != nil {
		t.Fatal(err)
	}
	if err := testnet.Veth(lab.Switch, "prt6", rt, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := testnet.Veth(rt, "eth1", lab.Client, "eth2"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		ns   *testnet.NS
		args []string
	}{
		{lab.Switch, []string{"link", "set", "prt6", "master", "br0"}},
		{rt, []string{"-6", "addr", "add", router6Bridge.String() + "/64", "dev", "eth0", "nodad"}},
		{rt, []string{"-6", "addr", "add", router6Leg.String() + "/64", "dev", "eth1", "nodad"}},
		{rt, []string{"link", "set", "eth1", "mtu", "1280"}},
		{lab.Client, []string{"-6", "addr", "add", client6Leg.String() + "/64", "dev", "eth2", "nodad"}},
		{lab.Client, []string{"link", "set", "eth2", "mtu", "1280"}},
		{rt, []string{"-6", "route", "add", testnet.VIP6.String() + "/128", "via", "2001:2::2"}},
	} {
		if err := step.ns.IP(step.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Sysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	// The router's errors cross the director's AF_XDP path whole.
	if err := rt.Do(func() error { return nic.DisableTxChecksum("eth0") }); err != nil {
		t.Fatal(err)
	}
	for _, rs := range lab.Reals {
		if err := rs.IP("-6", "route", "add", "2001:2:9::/64", "via", router6Bridge.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// download6 fetches size bytes over HTTP from [VIP6]:80, from the
// client's leg behind the reply router, within timeout.
func download6(lab *testnet.Lab, size int, timeout time.Duration) (int, error) {
	var n int
	err := lab.Client.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: client6Leg.AsSlice()}, Timeout: timeout}
		c, err := d.Dial("tcp6", netip.AddrPortFrom(testnet.VIP6, 80).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := fmt.Fprintf(c, "GET /?bytes=%d HTTP/1.0\r\nHost: vip\r\n\r\n", size); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		m, err := io.Copy(io.Discard, resp.Body)
		n = int(m)
		return err
	})
	return n, err
}

// TestPathMTUDiscoveryIPv6ThroughTheDirector: IPv6 path MTU discovery
// through the director. A router between the real server and the client
// has a 1280-byte link to the client; the real server's full-size replies
// do not fit, and the router sends ICMPv6 Packet Too Big to their source,
// the VIP, which leads to the director. The director's steering program
// takes the error and the worker passes it to the connection's real
// server (by DR, or IPv6-in-IPv6 by TUN), whose kernel lowers its path
// MTU, so a large HTTP response arrives whole. Without that the error
// ends in the director's kernel, the real server keeps retransmitting
// 1500-byte segments and the transfer stalls.
func TestPathMTUDiscoveryIPv6ThroughTheDirector(t *testing.T) {
	for _, mode := range []string{"dr", "tun"} {
		t.Run(mode, func(t *testing.T) {
			lab := newLab(t, testnet.LabOptions{Mode: mode, IPv6: true, Weights: []int{1}})
			addReplyRouter6(t, lab)
			vip := netip.AddrPortFrom(testnet.VIP6, 80).String()
			fwd := map[string]string{"dr": "-g", "tun": "-i"}[mode]
			mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "rr")
			mustAfvsadm(t, lab, "-a", "-t", vip, "-r", netip.AddrPortFrom(lab.RealAddrs6[0], 80).String(), fwd)
			const size = 200000
			n, err := download6(lab, size, 15*time.Second)
			if err != nil || n < size {
				st, _ := lab.Control().Status()
				t.Fatalf("downloaded %d of %d bytes through a 1280-byte reply path: %v (drops %v, steering %v)",
					n, size, err, st.Drops, st.Steering)
			}
			st, err := lab.Control().Status()
			if err != nil {
				t.Fatal(err)
			}
			if st.ICMPForwarded == 0 || st.Steering["icmp_errors"] == 0 {
				t.Fatalf("no ICMPv6 error forwarded to the real server (forwarded %d, steered %d, drops %v)",
					st.ICMPForwarded, st.Steering["icmp_errors"], st.Drops)
			}
			// The real server learnt the router's MTU toward the client.
			out, err := testnet.Output("ip", "-n", lab.Reals[0].Name, "-6", "route", "get", client6Leg.String(), "from", testnet.VIP6.String())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "mtu 1280") {
				t.Fatalf("real server has no learnt MTU 1280 toward the client:\n%s", out)
			}
			t.Logf("%d ICMP errors forwarded", st.ICMPForwarded)
		})
	}
}
