package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
)

// maxHTTPBytes caps the ?bytes=N of the test HTTP answer.
const maxHTTPBytes = 64 << 20

// runRealServer prepares this host as an LVS real server, as the LVS
// manual prescribes, and undoes it on exit:
//   - every VIP on lo, an IPv4 one as a /32 and an IPv6 one as a /128;
//   - arp_ignore=1 and arp_announce=2, so the real server never answers or
//     announces ARP for an IPv4 VIP (the director owns it). An IPv6 VIP
//     needs no setting: Linux answers a neighbour solicitation only for an
//     address of the interface it arrived on (ndisc_recv_ns looks the
//     target up with ipv6_get_ifaddr, strict), so a VIP on lo is never
//     announced on --dev; IPv6 must be enabled on lo and --dev, which is
//     checked;
//   - for VS/TUN, decapsulation: the kernel's tunl0 device when the kernel
//     has one and every VIP is IPv4 (--decap auto or kernel; it takes IPIP
//     only), otherwise an XDP program on --dev (xdpprog.Decap46) that
//     strips IPIP, IPv6-in-IPv4, IPv6-in-IPv6 and IPv4-in-IPv6 packets
//     addressed to a VIP; rp_filter is relaxed because the inner source
//     (the client) need not route back via --dev;
//   - for VS/NAT, no VIP and no ARP settings: the director rewrites the
//     destination to the real server's own address. What it needs is its
//     replies going back through the director: with --gateway the default
//     route becomes the director (the old one comes back on exit);
//     without, an existing default route is required and reported.
//
// With --http-name it also answers HTTP on every VIP with that name, which
// the demo and the tests use to see which server answered.
func runRealServer(args []string) error {
	fs := pflag.NewFlagSet("afvs realserver", pflag.ContinueOnError)
	vipsArg := fs.StringSlice("vip", nil, "virtual IP address(es) to accept (repeatable)")
	mode := fs.String("mode", "dr", "forwarding method the director uses: dr, tun or nat")
	gateways := fs.StringSlice("gateway", nil, "nat mode: make this address (the director) the default route of its family (repeatable: an IPv4 and an IPv6 one)")
	dev := fs.String("dev", "eth0", "interface the director's frames arrive on")
	decap := fs.String("decap", "auto", "tun mode decapsulation: auto (kernel tunl0 if present and every VIP is IPv4, else xdp), xdp (IPIP, 6in4, 6in6 and 4in6) or kernel (IPIP)")
	xdpMode := fs.String("xdp-mode", "auto", "XDP attach mode for the decapsulation program: auto, native or generic")
	httpName := fs.String("http-name", "", "answer HTTP requests to the VIPs with this name (demo and tests)")
	httpPort := fs.Int("http-port", 80, "port for --http-name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode != "dr" && *mode != "tun" && *mode != "nat" {
		return fmt.Errorf("--mode %q: must be dr, tun or nat", *mode)
	}
	if *mode == "nat" {
		if len(*vipsArg) > 0 {
			return errors.New("--vip: a VS/NAT real server needs no VIP (the director rewrites the destination to its own address)")
		}
	} else if len(*vipsArg) == 0 {
		return errors.New("--vip is required")
	}
	var gws []netip.Addr
	for _, g := range *gateways {
		if *mode != "nat" {
			return fmt.Errorf("--gateway %s: only for --mode nat", g)
		}
		gw, err := netip.ParseAddr(g)
		if err != nil || gw.Zone() != "" || gw.Is4In6() || !gw.IsGlobalUnicast() {
			return fmt.Errorf("--gateway %q: must be a unicast IPv4 or IPv6 address", g)
		}
		for _, o := range gws {
			if o.Is6() == gw.Is6() {
				return fmt.Errorf("--gateway %s: %s is the %s gateway already (one of each family)", gw, o, map[bool]string{false: "IPv4", true: "IPv6"}[o.Is6()])
			}
		}
		gws = append(gws, gw)
	}
	var vips []netip.Addr
	any6 := false
	for _, s := range *vipsArg {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || a.Is4In6() || !a.IsGlobalUnicast() {
			return fmt.Errorf("--vip %q: must be a unicast IPv4 or IPv6 address", s)
		}
		any6 = any6 || a.Is6()
		vips = append(vips, a)
	}
	if *decap != "auto" && *decap != "xdp" && *decap != "kernel" {
		return fmt.Errorf("--decap %q: must be auto, xdp or kernel", *decap)
	}
	if *mode == "tun" && *decap == "kernel" && any6 {
		return errors.New("--decap kernel: tunl0 decapsulates IPIP only; an IPv6 VIP needs --decap xdp (or auto)")
	}
	if *httpPort < 1 || *httpPort > 65535 {
		return fmt.Errorf("--http-port %d: must be 1..65535", *httpPort)
	}
	xm, err := xdpprog.ParseMode(*xdpMode)
	if err != nil {
		return err
	}
	k := nic.Current()
	ifc, err := k.Lookup(*dev)
	if err != nil {
		return err
	}

	var undo []func()
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}()
	setSysctl := func(key, val string) error {
		path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", key, err)
		}
		if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", key, val, err)
		}
		undo = append(undo, func() { _ = os.WriteFile(path, old, 0o644) })
		return nil
	}
	how := "none (dr)"
	if *mode == "nat" {
		if how, err = natRoute(k, *dev, gws, &undo); err != nil {
			return err
		}
		return serveRealServer(*httpName, *httpPort, *vipsArg, *mode, how, &undo)
	}
	for _, kv := range [][2]string{
		{"net.ipv4.conf.all.arp_ignore", "1"}, {"net.ipv4.conf.all.arp_announce", "2"},
		{"net.ipv4.conf." + *dev + ".arp_ignore", "1"}, {"net.ipv4.conf." + *dev + ".arp_announce", "2"},
	} {
		if err := setSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if any6 {
		if err := checkIPv6Enabled(*dev); err != nil {
			return err
		}
	}
	for _, v := range vips {
		p := netip.PrefixFrom(v, v.BitLen())
		added, err := k.AddAddr("lo", p)
		if err != nil {
			return err
		}
		if added {
			undo = append(undo, func() { _ = k.DelAddr("lo", p) })
		}
	}
	if *mode == "tun" {
		for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf." + *dev + ".rp_filter"} {
			if err := setSysctl(key, "0"); err != nil {
				return err
			}
		}
		_, tunlErr := k.Lookup("tunl0")
		useKernel := *decap == "kernel" || (*decap == "auto" && tunlErr == nil && !any6)
		if useKernel {
			if tunlErr != nil {
				return fmt.Errorf("--decap kernel: this kernel has no tunl0 (ipip) device: %w", tunlErr)
			}
			if err := k.SetUp("tunl0"); err != nil {
				return err
			}
			if err := setSysctl("net.ipv4.conf.tunl0.rp_filter", "0"); err != nil {
				return err
			}
			how = "kernel tunl0"
		} else {
			prog, err := xdpprog.LoadDecap46(vips)
			if err != nil {
				return err
			}
			undo = append(undo, func() { prog.Close() })
			att, err := prog.Attach(ifc.Index, xm)
			if err != nil {
				return fmt.Errorf("attach decapsulation program to %s: %w", *dev, err)
			}
			undo = append(undo, func() { att.Close() })
			how = "xdp on " + *dev + " (" + att.Mode().String() + ")"
		}
	}
	return serveRealServer(*httpName, *httpPort, *vipsArg, *mode, how, &undo)
}

// checkIPv6Enabled refuses a host where IPv6 is disabled on lo or dev: an
// IPv6 VIP could not be added to lo, or its packets would not be taken on
// dev. The error names the sysctl.
func checkIPv6Enabled(dev string) error {
	for _, d := range []string{"lo", dev} {
		key := "net.ipv6.conf." + d + ".disable_ipv6"
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		if err != nil {
			return fmt.Errorf("an IPv6 VIP needs IPv6: sysctl %s: %w", key, err)
		}
		if strings.TrimSpace(string(b)) != "0" {
			return fmt.Errorf("an IPv6 VIP needs IPv6 on %s: sysctl %s is %s, must be 0", d, key, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// natRoute makes or checks a VS/NAT real server's default routes: via
// each gateway on dev, in its family, restoring the old ones through
// undo; with no gateway an existing default route of either family is
// required (a real server of IPv6 services only needs the IPv6 one), and
// those there are reported.
func natRoute(k *nic.Kernel, dev string, gws []netip.Addr, undo *[]func()) (string, error) {
	if len(gws) == 0 {
		var how []string
		for _, v6 := range []bool{false, true} {
			oldGW, oldDev, had, err := k.DefaultRoute(v6)
			if err != nil {
				return "", err
			}
			if had {
				how = append(how, "default via "+oldGW.String()+" dev "+oldDev+" (unchanged)")
			}
		}
		if len(how) == 0 {
			return "", errors.New("--mode nat: no default route, IPv4 or IPv6: a VS/NAT real server's replies must go back through the director (give --gateway DIRECTOR)")
		}
		return strings.Join(how, ", "), nil
	}
	var how []string
	for _, gw := range gws {
		oldGW, oldDev, had, err := k.DefaultRoute(gw.Is6())
		if err != nil {
			return "", err
		}
		if err := k.ReplaceDefaultRoute(dev, gw); err != nil {
			return "", err
		}
		*undo = append(*undo, func() {
			if had {
				_ = k.ReplaceDefaultRoute(oldDev, oldGW)
			} else {
				_ = k.DeleteDefaultRoute(dev, gw)
			}
		})
		how = append(how, "default via "+gw.String()+" dev "+dev)
	}
	return strings.Join(how, ", "), nil
}

// serveRealServer answers HTTP with name (when set), reports the real
// server ready and waits for SIGTERM or SIGINT.
func serveRealServer(httpName string, httpPort int, vips []string, mode, how string, undo *[]func()) error {
	if httpName != "" {
		name := httpName
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, name)
			// ?bytes=N adds N bytes, for tests of large replies.
			if n, err := strconv.Atoi(r.URL.Query().Get("bytes")); err == nil && n > 0 && n <= maxHTTPBytes {
				_, _ = w.Write(bytes.Repeat([]byte{'x'}, n))
			}
		})
		// Listen on every address: clients reach the VIP, and the
		// director's health checks reach the real server's own address.
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", httpPort))
		if err != nil {
			return fmt.Errorf("http on port %d: %w", httpPort, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }() // returns when the listener closes
		*undo = append(*undo, func() { srv.Close() })
	}
	if mode == "nat" {
		fmt.Printf("realserver ready: mode=nat route=%s\n", how)
	} else {
		fmt.Printf("realserver ready: vips=%s mode=%s decap=%s\n", strings.Join(vips, ","), mode, how)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}
