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

	"github.com/afvs/afvs/internal/testnet"
)

// TestTunnelPacketTooBigIPv6: the director's own too-big answers in each
// tunnel family, live. Every link is 1500 bytes, so a client's full-size
// segment does not fit in a tunnel. An IPv6 client gets ICMPv6 Packet Too
// Big from the VIP with the MTU less the tunnel header (1480 for IPv6 in
// IPv4, 1460 for IPv6 in IPv6), its kernel takes it (checksum and quote
// right) and lowers its path MTU to the VIP, and a 20 kB POST goes
// through; an IPv4 client of a service with IPv6 tunnel dests (IPv4 in
// IPv6) gets fragmentation needed with 1460.
func TestTunnelPacketTooBigIPv6(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "tun", IPv6: true, Weights: []int{1}})
	vip6 := netip.AddrPortFrom(testnet.VIP6, 80)
	vip4 := netip.AddrPortFrom(lab.VIP, 80)
	post := func(what string, to netip.AddrPort, wantMTU int) {
		t.Helper()
		before, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		name, err := postFromClient(lab, to, 20000)
		if err != nil || name != lab.Names[0] {
			t.Fatalf("%s: 20 kB POST to %s: answered by %q, %v", what, to, name, err)
		}
		after := quiesced(t, lab)
		if after.Drops["frag_needed"] == before.Drops["frag_needed"] || after.ICMPSent == before.ICMPSent {
			t.Errorf("%s: no too-big answer sent (frag_needed %d, icmp sent %d)", what, after.Drops["frag_needed"]-before.Drops["frag_needed"], after.ICMPSent-before.ICMPSent)
		}
		fam := "-4"
		if to.Addr().Is6() {
			fam = "-6"
		}
		out, err := testnet.Output("ip", "-n", lab.Client.Name, fam, "route", "get", to.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, fmt.Sprintf("mtu %d", wantMTU)) {
			t.Errorf("%s: the client's route to %s has not learnt mtu %d:\n%s", what, to.Addr(), wantMTU, out)
		}
	}

	mustAfvsadm(t, lab, "-A", "-t", vip6.String(), "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-t", vip6.String(), "-r", netip.AddrPortFrom(lab.RealAddrs[0], 80).String(), "-i")
	post("IPv6 in IPv4", vip6, 1480)
	mustAfvsadm(t, lab, "-d", "-t", vip6.String(), "-r", netip.AddrPortFrom(lab.RealAddrs[0], 80).String())
	mustAfvsadm(t, lab, "-a", "-t", vip6.String(), "-r", netip.AddrPortFrom(lab.RealAddrs6[0], 80).String(), "-i")
	post("IPv6 in IPv6", vip6, 1460)
	mustAfvsadm(t, lab, "-A", "-t", vip4.String(), "-s", "rr")
	mustAfvsadm(t, lab, "-a", "-t", vip4.String(), "-r", netip.AddrPortFrom(lab.RealAddrs6[0], 80).String(), "-i")
	post("IPv4 in IPv6", vip4, 1460)
}

// postFromClient sends one HTTP/1.0 POST with a body of size bytes from
// lab's client to addr, with the kernel's default path MTU discovery, and
// returns the name of the real server that answered.
func postFromClient(lab *testnet.Lab, addr netip.AddrPort, size int) (string, error) {
	var name string
	err := lab.Client.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		req := fmt.Sprintf("POST / HTTP/1.0\r\nHost: vip\r\nContent-Length: %d\r\n\r\n%s", size, strings.Repeat("x", size))
		if _, err := io.WriteString(c, req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		name = strings.TrimSpace(string(b))
		return nil
	})
	return name, err
}
