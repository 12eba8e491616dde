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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/internal/testnet"
	ts "github.com/afvs/afvs/internal/testsupport"
)

// synCapture6 counts the IPv6 TCP SYNs (SYN without ACK) a real server's
// eth0 receives, by whether their source is in the spoofed range
// 2001:2:0:8000::/49 or is the lab's client.
type synCapture6 struct {
	fd       int
	stopping atomic.Bool
	done     chan struct{}
	spoofed  atomic.Uint64
	client   atomic.Uint64
}

var spoofed6 = netip.MustParsePrefix("2001:2:0:8000::/49")

func startSYNCapture6(t *testing.T, ns *testnet.NS, client netip.Addr) *synCapture6 {
	t.Helper()
	c := &synCapture6{fd: -1, done: make(chan struct{})}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IPV6)))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index}); err != nil {
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
			// The director's SYNs carry no extension header.
			f := buf[:n]
			if n < 14+40+20 || f[14+6] != 6 || f[14+40+13]&0x12 != 0x02 {
				continue
			}
			switch src := netip.AddrFrom16([16]byte(f[14+8 : 14+24])); {
			case spoofed6.Contains(src):
				c.spoofed.Add(1)
			case src == client:
				c.client.Add(1)
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *synCapture6) stop() {
	if c.fd >= 0 {
		c.stopping.Store(true)
		<-c.done
		unix.Close(c.fd)
		c.fd = -1
	}
}

// TestSYNProxyIPv6 runs real HTTP over IPv6 through an IPv6 VS/NAT
// service with syn_proxy: true in its config, in both layouts: new
// connections, and a keep-alive connection carrying large downloads
// and a large upload (the sequence translation both ways for the whole
// connection). Then it sends SYNs from spoofed sources in
// 2001:2:0:8000::/49: the director answers them with cookies and makes
// no entry, and the real servers, captured on their own interfaces,
// receive SYNs only from the client, one per connection. Before this
// change the service was refused (the SYN proxy was IPv4 only).
func TestSYNProxyIPv6(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two_interfaces=%v", two), func(t *testing.T) { testSYNProxyIPv6(t, two) })
	}
}

func testSYNProxyIPv6(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", IPv6: true, Weights: []int{1, 1}, TwoInterfaces: two, NoDirector: true})
	var svc strings.Builder
	fmt.Fprintf(&svc, "services:\n  - proto: tcp\n    address: \"%s\"\n    port: 80\n    scheduler: rr\n    forward: nat\n    syn_proxy: true\n    reals:\n", testnet.VIP6)
	for _, a := range lab.RealAddrs6 {
		fmt.Fprintf(&svc, "      - {address: \"%s\", port: %d}\n", a, testnet.NATPort)
	}
	cfg := strings.Replace(lab.Config(), "services: []\n", svc.String(), 1)
	if cfg == lab.Config() {
		t.Fatal("the IPv6 lab's config has no empty service list to replace")
	}
	if err := os.WriteFile(lab.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lab.StartDirector(); err != nil {
		t.Fatalf("afvs refused the IPv6 service with syn_proxy: true: %v", err)
	}
	client6 := netip.MustParseAddr("2001:2::10")
	caps := make([]*synCapture6, len(lab.Reals))
	for i, ns := range lab.Reals {
		caps[i] = startSYNCapture6(t, ns, client6)
	}
	st0, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}

	// New connections.
	const n = 100
	res := lab.GetFrom(testnet.VIP6, n, 4)
	if res.OK != n || len(res.By) != len(lab.Reals) {
		t.Fatalf("new connections through the proxy: %d of %d answered, by %v: %v", res.OK, n, res.By, res.Errors)
	}

	// One keep-alive connection: downloads of 300 kB each and an upload
	// of 200 kB, every segment's numbers translated.
	var conn net.Conn
	if err := lab.Client.Do(func() error {
		d := net.Dialer{Timeout: 3 * time.Second}
		var err error
		conn, err = d.Dial("tcp", netip.AddrPortFrom(testnet.VIP6, 80).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	const big, upload = 300_000, 200_000
	for i := range 6 {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := fmt.Sprintf("GET /?bytes=%d HTTP/1.1\r\nHost: vip\r\n\r\n", big)
		if i == 3 {
			req = fmt.Sprintf("POST /?bytes=%d HTTP/1.1\r\nHost: vip\r\nContent-Length: %d\r\n\r\n%s", big, upload, strings.Repeat("u", upload))
		}
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatalf("request %d on the keep-alive connection: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d on the keep-alive connection: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(body) < big || strings.Count(string(body), "x") != big {
			t.Fatalf("response %d: status %d, %d bytes, %v", i, resp.StatusCode, len(body), err)
		}
	}

	// SYNs from spoofed sources, paced in bursts.
	const spoofN = 3000
	src, dst := macOf(t, lab.Client, "eth0"), macOf(t, lab.Director, "eth0")
	var fd int
	if err := lab.Client.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	rng := rand.New(rand.NewPCG(6, 13))
	sent := 0
	for i := range spoofN {
		a := spoofed6.Addr().As16()
		a[6] |= byte(rng.Uint32())
		a[7] = byte(rng.Uint32())
		for j := 8; j < 16; j++ {
			a[j] = byte(rng.Uint32())
		}
		syn := ts.TCP(uint16(1024+rng.IntN(60000)), 80, ts.SYN)
		syn.Seq = rng.Uint32()
		f := ts.Build(t, ts.Eth(src[:], dst[:]), &layers.IPv6{HopLimit: 64, SrcIP: netip.AddrFrom16(a).AsSlice(), DstIP: testnet.VIP6.AsSlice()}, syn)
		if _, err := unix.Write(fd, f); err == nil {
			sent++
		}
		if i%64 == 63 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The client keeps connecting after the spoofed SYNs.
	if res := lab.GetFrom(testnet.VIP6, 20, 2); res.OK != 20 {
		t.Fatalf("new connections after the spoofed SYNs: %d of 20 answered: %v", res.OK, res.Errors)
	}
	st := quiesced(t, lab)
	time.Sleep(200 * time.Millisecond) // the captures' last frames
	var spoofed, fromClient uint64
	for _, c := range caps {
		c.stop()
		spoofed += c.spoofed.Load()
		fromClient += c.client.Load()
	}
	sp, sp0 := st.SYNProxy, st0.SYNProxy
	drops := map[string]uint64{}
	for why, v := range st.Drops {
		if v != 0 {
			drops[why] = v
		}
	}
	t.Logf("sent %d spoofed SYNs; real servers got %d SYNs from spoofed sources, %d from the client; table %d entries; proxy %+v; drops %v",
		sent, spoofed, fromClient, st.Table.Entries, sp, drops)

	conns := uint64(n + 1 + 20)
	if spoofed != 0 {
		t.Errorf("the real servers received %d SYNs from spoofed sources", spoofed)
	}
	if fromClient < conns {
		t.Errorf("the real servers' captures saw %d SYNs from the client, want at least %d", fromClient, conns)
	}
	if sent < spoofN*9/10 {
		t.Errorf("only %d of %d spoofed SYNs were sent", sent, spoofN)
	}
	if cookies := sp.Cookies - sp0.Cookies; cookies < conns+uint64(sent)/2 {
		t.Errorf("%d cookies sent for %d connections and %d spoofed SYNs", cookies, conns, sent)
	}
	if opened, est := sp.Opened-sp0.Opened, sp.Established-sp0.Established; opened < conns || est < conns {
		t.Errorf("proxy opened %d and established %d connections, want %d each", opened, est, conns)
	}
	if max := conns + 16; st.Table.Entries > max {
		t.Errorf("%d connection entries after the spoofed SYNs, more than the client's %d", st.Table.Entries, max)
	}
	for _, why := range []string{"synproxy_bad_cookie", "synproxy_cookie_expired", "synproxy_not_nat", "reply_no_connection"} {
		if st.Drops[why] != st0.Drops[why] {
			t.Errorf("drops %s: %d", why, st.Drops[why]-st0.Drops[why])
		}
	}
	if metrics := scrape(t, lab); !strings.Contains(metrics, fmt.Sprintf("afvs_syn_proxy_total{event=\"cookies\"} %d", sp.Cookies)) {
		t.Errorf("metrics lack afvs_syn_proxy_total{event=\"cookies\"} %d:\n%s", sp.Cookies, grepLines(metrics, "afvs_syn_proxy"))
	}
}
