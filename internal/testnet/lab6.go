package testnet

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/afvs/afvs/dataplane/nic"
)

// VIP6 is the IPv6 VIP of a dual-stack lab (LabOptions.IPv6).
var VIP6 = netip.MustParseAddr("2001:2:0:1::1")

// build6 builds the dual-stack lab (LabOptions.IPv6). One interface: the
// client, the director and the real servers on one bridge, in
// 198.18.0.0/24 and 2001:2::/64 (client ::10, director ::2, real servers
// ::11, ::12, ...). Two interfaces: the client and the director's eth0
// there; the director's eth1 (198.18.1.1, 2001:2:0:2::1) and the real
// servers (198.18.1.11, 2001:2:0:2::11, ...) on a second bridge, where the
// client's eth1 (198.18.1.10, 2001:2:0:2::10) is the real servers' way back
// to it, never the director. The VIPs 198.19.0.1 and 2001:2:0:1::1 are
// routed to the director. The real servers run `afvs realserver` for both VIPs in
// the lab's mode (dr or tun: for tun they decapsulate every family with
// the XDP decapsulator). IPv6 addresses skip duplicate address detection
// so that they are usable at once; neighbour discovery itself runs as
// usual, through the director's steering program.
//
// VS/NAT (Mode "nat"), as the IPv4 NAT lab: the real servers sit in
// 198.18.2.0/24 and 2001:2:0:3::/64 (::11, ::12, ...), on br0 with the
// director's 198.18.2.1 and 2001:2:0:3::1 as second addresses of its eth0,
// or with two interfaces on br1 behind the director's eth1 (those
// addresses there; the client has no leg on br1). They hold no VIP,
// listen on NATPort and route everything through the director (`afvs
// realserver --gateway` for each family); the client has no route to
// them, and the director's kernel forwards neither family.
func (l *Lab) build6() error {
	nat := l.Opt.Mode == "nat"
	if l.Opt.Mode != "dr" && l.Opt.Mode != "tun" && !nat {
		return fmt.Errorf("lab: the IPv6 lab runs dr, tun or nat, not %q", l.Opt.Mode)
	}
	var err error
	n := l.Net
	if l.Switch, err = n.NS("sw"); err != nil {
		return err
	}
	if l.Client, err = n.NS("client"); err != nil {
		return err
	}
	if l.Director, err = n.NS("director"); err != nil {
		return err
	}
	bridges := []string{"br0"}
	if l.Opt.TwoInterfaces {
		bridges = append(bridges, "br1")
	}
	for _, br := range bridges {
		for _, args := range [][]string{{"link", "add", br, "type", "bridge", "mcast_snooping", "0"}, {"link", "set", br, "up"}} {
			if err := l.Switch.IP(args...); err != nil {
				return err
			}
		}
	}
	port := 0
	plug := func(ns *NS, dev, br, v4, v6 string) error {
		port++
		p := fmt.Sprintf("p%d", port)
		if err := VethQueues(l.Switch, p, ns, dev, 1); err != nil {
			return err
		}
		if err := l.Switch.IP("link", "set", p, "master", br); err != nil {
			return err
		}
		if err := ns.IP("addr", "add", v4, "dev", dev); err != nil {
			return err
		}
		return ns.IP("-6", "addr", "add", v6, "dev", dev, "nodad")
	}
	if err := plug(l.Client, "eth0", "br0", "198.18.0.10/24", "2001:2::10/64"); err != nil {
		return err
	}
	if err := plug(l.Director, "eth0", "br0", "198.18.0.2/24", "2001:2::2/64"); err != nil {
		return err
	}
	realBr, real4, real6 := "br0", "198.18.0.%d", "2001:2::%x"
	switch {
	case nat && l.Opt.TwoInterfaces:
		realBr, real4, real6 = "br1", "198.18.2.%d", "2001:2:0:3::%x"
		if err := plug(l.Director, "eth1", "br1", "198.18.2.1/24", "2001:2:0:3::1/64"); err != nil {
			return err
		}
	case nat:
		real4, real6 = "198.18.2.%d", "2001:2:0:3::%x"
		if err := l.Director.IP("addr", "add", "198.18.2.1/24", "dev", "eth0"); err != nil {
			return err
		}
		if err := l.Director.IP("-6", "addr", "add", "2001:2:0:3::1/64", "dev", "eth0", "nodad"); err != nil {
			return err
		}
	case l.Opt.TwoInterfaces:
		realBr, real4, real6 = "br1", "198.18.1.%d", "2001:2:0:2::%x"
		if err := plug(l.Director, "eth1", "br1", "198.18.1.1/24", "2001:2:0:2::1/64"); err != nil {
			return err
		}
		if err := plug(l.Client, "eth1", "br1", "198.18.1.10/24", "2001:2:0:2::10/64"); err != nil {
			return err
		}
	}
	if err := l.Client.IP("route", "add", l.VIP.String()+"/32", "via", "198.18.0.2"); err != nil {
		return err
	}
	if err := l.Client.IP("-6", "route", "add", VIP6.String()+"/128", "via", "2001:2::2"); err != nil {
		return err
	}
	for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter", "net.ipv4.conf.eth0.rp_filter"} {
		if err := l.Client.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	if l.Opt.TwoInterfaces && !nat {
		if err := l.Client.Sysctl("net.ipv4.conf.eth1.rp_filter", "0"); err != nil {
			return err
		}
	}
	// veth TX checksum offload leaves partial TCP checksums that a
	// director intercepting frames with AF_XDP would forward broken.
	if err := l.Client.Do(func() error { return nic.DisableTxChecksum("eth0") }); err != nil {
		return err
	}
	if nat {
		for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
			if err := l.Director.Sysctl(key, "0"); err != nil {
				return err
			}
		}
	}
	for i := range l.Opt.Weights {
		name := fmt.Sprintf("rs%d", i+1)
		ns, err := l.Net.NS(name)
		if err != nil {
			return err
		}
		a4 := netip.MustParseAddr(fmt.Sprintf(real4, 11+i))
		a6 := netip.MustParseAddr(fmt.Sprintf(real6, 0x11+i))
		if err := plug(ns, "eth0", realBr, a4.String()+"/24", a6.String()+"/64"); err != nil {
			return err
		}
		if nat {
			// Replies go back through the director, whose checksum
			// updates are incremental: no partial checksums from veth.
			if err := ns.Do(func() error { return nic.DisableTxChecksum("eth0") }); err != nil {
				return err
			}
		} else if l.Opt.TwoInterfaces {
			// Back to the client through its own leg on br1.
			if err := ns.IP("route", "add", "198.18.0.0/24", "via", "198.18.1.10"); err != nil {
				return err
			}
			if err := ns.IP("-6", "route", "add", "2001:2::/64", "via", "2001:2:0:2::10"); err != nil {
				return err
			}
		}
		l.Reals = append(l.Reals, ns)
		l.RealAddrs = append(l.RealAddrs, a4)
		l.RealAddrs6 = append(l.RealAddrs6, a6)
		l.Names = append(l.Names, name)
		args := []string{"realserver", "--vip", l.VIP.String(), "--vip", VIP6.String(), "--mode", l.Opt.Mode, "--dev", "eth0",
			"--http-name", name, "--http-port", fmt.Sprint(l.Port)}
		if nat {
			args = []string{"realserver", "--mode", "nat", "--gateway", "198.18.2.1", "--gateway", "2001:2:0:3::1", "--dev", "eth0",
				"--http-name", name, "--http-port", fmt.Sprint(NATPort)}
		}
		if l.Opt.Mode == "tun" {
			args = append(args, "--decap", "xdp")
		}
		done, proc, err := startRealServer(ns, l.Opt.AFVS, args, name)
		if proc != nil {
			l.mu.Lock()
			l.realDone = append(l.realDone, done)
			l.realProc = append(l.realProc, proc)
			l.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Mark6 is the firewall mark of a dual-stack lab's mark group: TCP to
// VIP6 port 80, for an IPv6 firewall-mark service (afvsadm -A -f 6 -6).
const Mark6 = 6

// config6 is the dual-stack lab's director config: no services (the
// tests add them with afvsadm while afvs runs) and the Mark6 group.
func (l *Lab) config6() string {
	var b strings.Builder
	ifs := "[eth0]"
	if l.Opt.Mode == "nat" && l.Opt.TwoInterfaces {
		ifs = "[eth0, eth1]" // both receive: requests on eth0, replies on eth1
	}
	fmt.Fprintf(&b, "interfaces: %s\nxdp_mode: %s\nmetrics:\n  address: 127.0.0.1:9469\ncontrol:\n  socket: %s\ntable:\n  capacity: 65536\n", ifs, l.Opt.XDPMode, l.Socket)
	if l.Opt.Health != "" {
		fmt.Fprintf(&b, "health: %s\n", l.Opt.Health)
	}
	fmt.Fprintf(&b, "marks: [{mark: %d, matches: [{proto: tcp, address: \"%s\", ports: \"%d\"}]}]\nservices: []\n", Mark6, VIP6, l.Port)
	return b.String()
}
