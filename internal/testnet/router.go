package testnet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// The reply router's addresses: on the lab's bridge, and on its own link
// to the client's third leg.
var (
	routerAddr      = netip.MustParseAddr("198.18.0.3")
	replyClientAddr = netip.MustParseAddr("198.18.2.10")
	replyRouterLeg  = netip.MustParseAddr("198.18.2.1")
)

// buildReplyRouter adds a router between the real servers and the client
// for the replies, as the Internet is between a real server and a remote
// client: namespace "rt" on the bridge (198.18.0.3) and on a link of MTU
// ReplyMTU to the client's eth2 (198.18.2.10/24). The client sends from
// 198.18.2.10 to the VIP through the director as before; the real servers
// route 198.18.2.0/24 through the router, which forwards, and routes the
// VIP to the director. A full-size DF reply is too big for the router's
// link: it answers with ICMP fragmentation needed to the reply's source,
// the VIP, and so to the director, which must pass it to the real server
// for path MTU discovery to work.
func (l *Lab) buildReplyRouter() error {
	if l.Opt.TwoInterfaces {
		return fmt.Errorf("lab: ReplyMTU needs the one-interface layout")
	}
	rt, err := l.Net.NS("rt")
	if err != nil {
		return err
	}
	if err := Veth(l.Switch, "prt", rt, "eth0"); err != nil {
		return err
	}
	if err := l.Switch.IP("link", "set", "prt", "master", "br0"); err != nil {
		return err
	}
	if err := rt.IP("addr", "add", routerAddr.String()+"/24", "dev", "eth0"); err != nil {
		return err
	}
	if err := Veth(rt, "eth1", l.Client, "eth2"); err != nil {
		return err
	}
	mtu := fmt.Sprint(l.Opt.ReplyMTU)
	for _, step := range []struct {
		ns   *NS
		args []string
	}{
		{rt, []string{"addr", "add", replyRouterLeg.String() + "/24", "dev", "eth1"}},
		{rt, []string{"link", "set", "eth1", "mtu", mtu}},
		{l.Client, []string{"addr", "add", replyClientAddr.String() + "/24", "dev", "eth2"}},
		{l.Client, []string{"link", "set", "eth2", "mtu", mtu}},
		{rt, []string{"route", "add", l.VIP.String() + "/32", "via", "198.18.0.2"}},
	} {
		if err := step.ns.IP(step.args...); err != nil {
			return err
		}
	}
	if err := rt.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	_ = l.Client.Sysctl("net.ipv4.conf.eth2.rp_filter", "0")
	for _, rs := range l.Reals {
		if err := rs.IP("route", "add", "198.18.2.0/24", "via", routerAddr.String()); err != nil {
			return err
		}
	}
	return nil
}

// clientSource is the address the client's connections come from: the
// client's leg behind the reply router when there is one, else the
// kernel's choice.
func (l *Lab) clientSource() net.IP {
	if l.Opt.ReplyMTU > 0 {
		return replyClientAddr.AsSlice()
	}
	return nil
}

// Download fetches size bytes over HTTP from the VIP (the real servers
// answer "GET /?bytes=N" with their name and N bytes more) and returns how
// many bytes of body arrived. The transfer must finish within timeout.
func (l *Lab) Download(size int, timeout time.Duration) (int, error) {
	var n int
	err := l.Client.Do(func() error {
		c, err := l.dial(netip.AddrPortFrom(l.VIP, l.Port).String(), false)
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
