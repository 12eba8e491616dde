package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/ipvsadm"
)

// runDemo builds a lab of namespaces (client, director, three real servers
// on a bridge, all in 198.18.0.0/15), runs the afvs daemon in it, sends real HTTP
// requests to the VIP, prints who answered against the weights with the
// director's counters, and removes everything. It does this for VS/DR (on
// the built-in default config), for VS/TUN and for VS/NAT (real servers
// without a VIP behind port 8080, their default route via the director),
// and for IPv6 on the dual-stack lab (in 198.18.0.0/15 and 2001:2::/48,
// with an IPv6 service added by afvsadm commands while afvs runs): VS/DR
// (dr6), VS/TUN by IPv6-in-IPv6 (tun6) and VS/NAT (nat6). With --ha it
// shows an HA pair's failover instead (runHADemo).
func runDemo(args []string) error {
	fs := pflag.NewFlagSet("afvs-lab demo", pflag.ContinueOnError)
	n := fs.Int("requests", 3000, "HTTP requests per mode")
	conc := fs.Int("concurrency", 8, "requests in flight")
	modes := fs.StringSlice("modes", []string{"dr", "tun", "nat", "dr6", "tun6", "nat6"},
		"forwarding modes to show: dr, tun, nat, and dr6, tun6, nat6 (the same for an IPv6 VIP)")
	two := fs.Bool("two-interfaces", false, "director receives on eth0 and sends on eth1 (VS/NAT: receives on both, the replies arriving on eth1)")
	afvs := fs.String("afvs", "", "the afvs daemon binary (default: afvs next to afvs-lab, else on $PATH)")
	ha := fs.Bool("ha", false, "show an HA pair instead: two directors with keepalived, the master killed under load")
	haConns := fs.Int("conns", 50, "--ha: keep-alive connections held through the failover")
	haRounds := fs.Int("rounds", 1, "--ha: failovers, each on a fresh lab; more than one prints the median and maximum")
	haSched := fs.String("scheduler", "rr", "--ha: both directors' scheduler")
	haSloppy := fs.Bool("sloppy-tcp", false, "--ha: ipvs.sloppy_tcp on both directors")
	haSync := fs.Bool("sync", true, "--ha: connection sync, switched by keepalived's notify script")
	haWindow := fs.Duration("sync-window", 3*time.Second, "--ha with --sync: how long to read the sync counters before the kill")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ha {
		if *haConns < 1 || *haConns > 1000 || *haRounds < 1 || *haWindow < 100*time.Millisecond {
			return errors.New("--conns must be 1..1000, --rounds at least 1 and --sync-window at least 100ms")
		}
		daemon, err := testnet.DaemonBinary(*afvs)
		if err != nil {
			return err
		}
		return runHADemo(haDemo{daemon: daemon, conns: *haConns, rounds: *haRounds, scheduler: *haSched,
			sloppy: *haSloppy, sync: *haSync, settle: 3 * time.Second, window: *haWindow})
	}
	if *n < 1 || *conc < 1 {
		return errors.New("--requests and --concurrency must be at least 1")
	}
	for _, m := range *modes {
		if _, ok := demoTitles[m]; !ok {
			return fmt.Errorf("--modes %q: must be dr, tun, nat, dr6, tun6 or nat6", m)
		}
	}
	daemon, err := testnet.DaemonBinary(*afvs)
	if err != nil {
		return err
	}
	start := time.Now()
	for _, m := range *modes {
		if err := demoMode(daemon, m, *two, *n, *conc); err != nil {
			return fmt.Errorf("%s demo: %w", strings.ToUpper(m), err)
		}
	}
	fmt.Printf("demo finished in %.1fs; every namespace it made is gone\n", time.Since(start).Seconds())
	return nil
}

func demoMode(daemon, mode string, two bool, n, conc int) error {
	if m, ok := strings.CutSuffix(mode, "6"); ok {
		return demo6(daemon, m, two, n, conc)
	}
	o := testnet.LabOptions{AFVS: daemon, Mode: mode, TwoInterfaces: two, Builtin: mode == "dr" && !two}
	title := demoTitles[mode]
	how := "lab config"
	if o.Builtin {
		how = "built-in default config"
	}
	fmt.Printf("\n== %s: afvs on its %s ==\n", title, how)
	lab, err := testnet.NewLab(o)
	if err != nil {
		return err
	}
	defer lab.Close()
	layout := "client, director and real servers share 198.18.0.0/24"
	if two {
		layout = "client on 198.18.0.0/24 -> director eth0; director eth1 -> real servers on 198.18.1.0/24"
	}
	if mode == "nat" {
		layout = fmt.Sprintf("client 198.18.0.10; real servers on 198.18.2.0/24 (no VIP, port %d, default route via the director's 198.18.2.1); director ip_forward=0", testnet.NATPort)
		if two {
			layout = fmt.Sprintf("client on 198.18.0.0/24 -> director eth0; director eth1 (198.18.2.1, the real servers' default route) -> real servers on 198.18.2.0/24 (no VIP, port %d); afvs receives on both; director ip_forward=0", testnet.NATPort)
		}
	}
	fmt.Printf("lab: %s; VIP %s:%d routed to the director\n", layout, lab.VIP, lab.Port)
	return demoTraffic(lab, lab.VIP, lab.RealAddrs, n, conc)
}

// demoTitles names each mode's run.
var demoTitles = map[string]string{
	"dr":   "VS/DR (MAC rewrite)",
	"tun":  "VS/TUN (IPIP)",
	"nat":  "VS/NAT (address and port rewrite, both directions)",
	"dr6":  "VS/DR of IPv6 (MAC rewrite)",
	"tun6": "VS/TUN of IPv6 (IPv6-in-IPv6)",
	"nat6": "VS/NAT of IPv6 (address and port rewrite, both directions)",
}

// demo6 is the run of an IPv6 mode (dr6, tun6, nat6; mode is dr, tun or
// nat): the dual-stack lab's director starts with no services, and the
// IPv6 service on the lab's IPv6 VIP, wrr with the three real servers'
// IPv6 addresses forwarded by mode, is added with afvsadm commands, each
// printed and run as afvsadm runs it: parsed by the ipvsadm command line,
// then sent to the daemon's control socket. The real servers decapsulate
// IPv6-in-IPv6 with afvs's XDP program (tun), or hold no VIP, listen on
// testnet.NATPort and route through the director (nat).
func demo6(daemon, mode string, two bool, n, conc int) error {
	o := testnet.LabOptions{AFVS: daemon, Mode: mode, IPv6: true, TwoInterfaces: two, Weights: []int{1, 2, 3}}
	fmt.Printf("\n== %s: afvs started with no services, afvsadm adds one ==\n", demoTitles[mode+"6"])
	lab, err := testnet.NewLab(o)
	if err != nil {
		return err
	}
	defer lab.Close()
	var layout string
	port, flag := lab.Port, "-g"
	switch {
	case mode == "nat" && two:
		layout = fmt.Sprintf("dual-stack; client on 2001:2::/64 -> director eth0; director eth1 (2001:2:0:3::1, the real servers' default route) -> real servers on 2001:2:0:3::/64 (no VIP, port %d); afvs receives on both; director forwarding=0; VIP %s routed to the director", testnet.NATPort, testnet.VIP6)
	case mode == "nat":
		layout = fmt.Sprintf("dual-stack; client 2001:2::10; real servers on 2001:2:0:3::/64 (no VIP, port %d, default route via the director's 2001:2:0:3::1); director forwarding=0; VIP %s routed to the director", testnet.NATPort, testnet.VIP6)
	case two:
		layout = fmt.Sprintf("dual-stack; client on 2001:2::/64 -> director eth0; director eth1 -> real servers on 2001:2:0:2::/64; VIP %s routed to the director", testnet.VIP6)
	default:
		layout = fmt.Sprintf("dual-stack; client 2001:2::10, director 2001:2::2 and real servers share 2001:2::/64; VIP %s routed to the director", testnet.VIP6)
	}
	switch mode {
	case "dr":
		layout += "; the real servers hold it on lo and do not answer neighbour discovery for it"
	case "tun":
		layout += "; the real servers hold it on lo and strip IPv6-in-IPv6 with afvs's XDP decapsulator"
		flag = "-i"
	case "nat":
		port, flag = testnet.NATPort, "-m"
	}
	fmt.Printf("lab: %s\n", layout)
	svc := netip.AddrPortFrom(testnet.VIP6, lab.Port).String()
	cmds := [][]string{{"-A", "-t", svc, "-s", "wrr"}}
	for i, a := range lab.RealAddrs6 {
		cmds = append(cmds, []string{"-a", "-t", svc, "-r", netip.AddrPortFrom(a, port).String(), flag, "-w", fmt.Sprint(o.Weights[i])})
	}
	c := lab.Control()
	for _, args := range cmds {
		fmt.Printf("$ afvsadm %s\n", strings.Join(args, " "))
		if _, err := ipvsadm.Parse(args); err != nil {
			return fmt.Errorf("afvsadm %s: %w", strings.Join(args, " "), err)
		}
		if err := c.Commands([][]string{args}); err != nil {
			return fmt.Errorf("afvsadm %s: %w", strings.Join(args, " "), err)
		}
	}
	return demoTraffic(lab, testnet.VIP6, lab.RealAddrs6, n, conc)
}

// demoTraffic sends n HTTP requests from the lab's client to vip, conc at
// a time, and prints who answered (the real servers at addrs, by the
// lab's names and weights) against the weights, the director's counters
// and the afvsadm -L -n --stats listing. Any failed request is an error.
func demoTraffic(lab *testnet.Lab, vip netip.Addr, addrs []netip.Addr, n, conc int) error {
	t0 := time.Now()
	res := lab.GetFrom(vip, n, conc)
	el := time.Since(t0)
	fmt.Printf("sent %d HTTP requests from the client: %d answered, %d failed (%.1fs)\n", n, res.OK, res.Failed, el.Seconds())
	for _, e := range res.Errors {
		fmt.Printf("  error: %s\n", e)
	}
	weights := lab.Opt.WeightsOrDefault()
	total := 0
	for _, w := range weights {
		total += w
	}
	aw := 13
	for _, a := range addrs {
		aw = max(aw, len(a.String()))
	}
	fmt.Printf("  %-6s %-*s %6s %8s %8s %8s\n", "server", aw, "address", "weight", "answers", "share", "weight%")
	for i, name := range lab.Names {
		w := weights[i]
		share := 0.0
		if res.OK > 0 {
			share = 100 * float64(res.By[name]) / float64(res.OK)
		}
		fmt.Printf("  %-6s %-*s %6d %8d %7.1f%% %7.1f%%\n", name, aw, addrs[i], w, res.By[name], share, 100*float64(w)/float64(total))
	}
	c := lab.Control()
	st, err := c.Status()
	if err != nil {
		return err
	}
	printCounters(st)
	fmt.Println("$ afvsadm -L -n --stats")
	if snap, err := c.IpvsadmSnapshot(false); err == nil {
		if cmd, err := ipvsadm.Parse([]string{"-L", "-n", "--stats"}); err == nil {
			_ = snap.Write(os.Stdout, cmd)
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d requests failed", res.Failed, n)
	}
	return nil
}

func printCounters(st api.Status) {
	fmt.Printf("director: rx %d frames, tx %d frames, icmp sent %d; steering: redirected %d, passed to kernel %d\n",
		st.RX, st.TX, st.ICMPSent, st.Steering["redirected"], st.Steering["passed"])
	fmt.Printf("conntrack: %d entries of %d, inserted %d, evicted %d, refused %d\n", st.Table.Entries, st.Table.Capacity, st.Table.Inserted, st.Table.Evicted, st.Table.Refused)
	var drops []string
	for r, v := range st.Drops {
		if v > 0 {
			drops = append(drops, fmt.Sprintf("%s=%d", r, v))
		}
	}
	sort.Strings(drops)
	if len(drops) == 0 {
		drops = []string{"none"}
	}
	fmt.Printf("drops: %s\n", strings.Join(drops, " "))
}
