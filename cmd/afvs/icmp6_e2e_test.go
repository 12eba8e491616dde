package main

import (
	"bufio"
	"bytes"
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
	"golang.org/x/sys/unix"
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

// TestLargeUDPFragments4in6: UDP datagrams larger than the MTU reach an
// IPv4 VIP as IPv4 fragments, and the service tunnels them to an IPv6
// real server (4in6). A full-size fragment does not fit the tunnel with
// its 40-byte IPv6 header, so the director splits it into two IPv4
// fragments, each in its own IPv6 packet; the real server decapsulates
// them with its XDP decapsulator and its kernel reassembles the datagram.
// The client gets every echo whole, and nothing is dropped as too big.
func TestLargeUDPFragments4in6(t *testing.T) {
	const port = 5353
	lab := newLab(t, testnet.LabOptions{Mode: "tun", IPv6: true, Weights: []int{1}})
	vip := netip.AddrPortFrom(lab.VIP, port)
	mustAfvsadm(t, lab, "-A", "-u", vip.String(), "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-u", vip.String(), "-r", netip.AddrPortFrom(lab.RealAddrs6[0], port).String(), "-i")
	got := startUDPEcho(t, lab.Reals[0], vip)
	var conn *net.UDPConn
	err := lab.Client.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(vip))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Datagrams without DF, as the fragments a router makes carry none:
	// the director must split, not answer fragmentation needed.
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
	}); err != nil || serr != nil {
		t.Fatalf("clear DF: %v %v", err, serr)
	}
	buf := make([]byte, 65536)
	for i, size := range []int{1000, 1470, 3000, 8000, 20000} {
		msg := bytes.Repeat([]byte{byte('a' + i)}, size)
		var n int
		var err error
		// UDP may lose a datagram under load: a few tries each.
		for range 5 {
			if _, err = conn.Write(msg); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if n, err = conn.Read(buf); err == nil {
				break
			}
		}
		if err != nil || !bytes.Equal(buf[:n], msg) {
			st, _ := lab.Control().Status()
			t.Fatalf("%d-byte datagram: echo of %d bytes, err %v (drops %v)", size, n, err, st.Drops)
		}
	}
	if sizes := got(); len(sizes) < 5 {
		t.Fatalf("real server recorded %v", sizes)
	}
	st := quiesced(t, lab)
	if st.Fragmented == 0 || st.Drops["too_big"] != 0 || st.Drops["frag_needed"] != 0 || st.Drops["fragment_timeout"] != 0 {
		t.Fatalf("fragmented %d, drops %v: want split packets and no too_big", st.Fragmented, st.Drops)
	}
	t.Logf("%d packets split for the 4in6 tunnel", st.Fragmented)
}
