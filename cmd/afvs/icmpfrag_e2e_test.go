package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// TestPathMTUDiscoveryThroughTheDirector: a router between the real
// server and the client has a 1400-byte link to the client. The real
// server's full-size replies do not fit; the router sends ICMP
// fragmentation needed to their source, the VIP, which leads to the
// director. The director passes it to the real server of the connection
// (by DR, or tunnelled by TUN), whose kernel lowers its path MTU, so a
// large HTTP response arrives whole. Without that the ICMP ends in the
// director's kernel, the real server keeps retransmitting 1500-byte
// segments and the transfer stalls.
func TestPathMTUDiscoveryThroughTheDirector(t *testing.T) {
	for _, mode := range []string{"dr", "tun"} {
		t.Run(mode, func(t *testing.T) {
			lab := newLab(t, testnet.LabOptions{Mode: mode, Weights: []int{1}, ReplyMTU: 1400})
			const size = 200000
			n, err := lab.Download(size, 10*time.Second)
			if err != nil || n < size {
				t.Fatalf("downloaded %d of %d bytes through a 1400-byte reply path: %v", n, size, err)
			}
			st, err := lab.Control().Status()
			if err != nil {
				t.Fatal(err)
			}
			if st.ICMPForwarded == 0 || st.Steering["icmp_errors"] == 0 {
				t.Fatalf("no ICMP error forwarded to the real server (forwarded %d, steered %d, drops %v)",
					st.ICMPForwarded, st.Steering["icmp_errors"], st.Drops)
			}
			// The real server learnt the router's MTU toward the client.
			out, err := testnet.Output("ip", "-n", lab.Reals[0].Name, "route", "get", "198.18.2.10", "from", lab.VIP.String())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "mtu 1400") {
				t.Fatalf("real server has no learnt MTU 1400 toward the client:\n%s", out)
			}
			t.Logf("%d ICMP errors forwarded", st.ICMPForwarded)
		})
	}
}

// TestLargeUDPFragments: UDP datagrams larger than the MTU reach the VIP as
// IPv4 fragments; the director forwards them without reassembly, the
// first scheduled and the others after it, by DR (unchanged) and by TUN
// (each tunnelled, split again where the tunnel header makes it too big).
// The real server reassembles, records the datagram and echoes it; the
// client gets every echo whole.
func TestLargeUDPFragments(t *testing.T) {
	for _, mode := range []string{"dr", "tun"} {
		t.Run(mode, func(t *testing.T) {
			const port = 5353
			lab := newLab(t, testnet.LabOptions{Mode: mode, Weights: []int{1}, UDPPort: port})
			got := startUDPEcho(t, lab.Reals[0], netip.AddrPortFrom(lab.VIP, port))
			var conn *net.UDPConn
			err := lab.Client.Do(func() error {
				var err error
				conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.VIP, port)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			buf := make([]byte, 65536)
			resent := 0
			for i, size := range []int{1000, 3000, 8000, 20000} {
				msg := bytes.Repeat([]byte{byte('a' + i)}, size)
				var n int
				var err error
				echoed := false
				// UDP may lose a datagram under load: a few tries each.
				// A try that timed out may still be echoed late, during
				// a later one: an echo of an earlier datagram is read
				// past, not taken for this one's.
				for try := range 5 {
					if try > 0 {
						resent++
					}
					if _, err = conn.Write(msg); err != nil {
						t.Fatal(err)
					}
					_ = conn.SetReadDeadline(time.Now().Add(time.Second))
					for {
						if n, err = conn.Read(buf); err != nil || bytes.Equal(buf[:n], msg) {
							break
						}
						t.Logf("%d-byte datagram: read past a %d-byte echo of an earlier one", size, n)
					}
					if err == nil {
						echoed = true
						break
					}
				}
				if !echoed {
					t.Fatalf("%d-byte datagram: no echo in 5 tries: %v", size, err)
				}
			}
			if sizes := got(); len(sizes) < 4 {
				t.Fatalf("real server recorded %v", sizes)
			}
			st, err := lab.Control().Status()
			if err != nil {
				t.Fatal(err)
			}
			if st.Steering["fragments"] == 0 || st.Drops["fragment_hold_full"] != 0 {
				t.Fatalf("steering fragments %d, drops %v", st.Steering["fragments"], st.Drops)
			}
			// A datagram lost on the way (sent again above) may have
			// left fragments held for a first one that never came; the
			// director then drops them at the timeout, as it should.
			// With nothing lost, nothing may time out.
			if st.Drops["fragment_timeout"] != 0 {
				if resent == 0 {
					t.Fatalf("%d fragments timed out, though every datagram was echoed at the first try; drops %v", st.Drops["fragment_timeout"], st.Drops)
				}
				t.Logf("%d fragments timed out after %d datagrams were lost and sent again", st.Drops["fragment_timeout"], resent)
			}
		})
	}
}

// startUDPEcho serves UDP on addr (the VIP, held on the real server's lo,
// so replies leave from it) in namespace ns: each datagram is recorded and
// sent back. The returned function lists the sizes received.
func startUDPEcho(t *testing.T, ns *testnet.NS, addr netip.AddrPort) func() []int {
	t.Helper()
	var pc net.PacketConn
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr.String())
		return err
	})
	if err != nil {
		t.Fatalf("udp echo on %s: %v", addr, err)
	}
	sizes := make(chan int, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					fmt.Println("udp echo:", err)
				}
				return
			}
			select {
			case sizes <- n:
			default:
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return func() []int {
		var out []int
		for {
			select {
			case n := <-sizes:
				out = append(out, n)
			default:
				return out
			}
		}
	}
}
