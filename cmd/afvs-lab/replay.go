package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/dataplane/replay"
	"github.com/afvs/afvs/internal/configfile"
)

func runReplay(args []string) error {
	fs := pflag.NewFlagSet("afvs-lab replay", pflag.ContinueOnError)
	path := fs.String("config", "", "config file with the services (the built-in default without it)")
	inPath := fs.String("in", "", "input pcap (Ethernet)")
	outPath := fs.String("out", "", "output pcap: the frames the director would transmit")
	mac := fs.String("mac", "02:00:00:00:00:02", "director interface MAC")
	addr := fs.String("addr", "198.18.0.2", "director IPv4 address (VS/TUN outer source)")
	mtu := fs.Int("mtu", 1500, "egress MTU")
	neigh := fs.StringSlice("neigh", nil, "real server MAC as IP=MAC (repeatable); others get 02:00:<ip>")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *inPath == "" || *outPath == "" {
		return errors.New("--in and --out are required")
	}
	cfg, err := configfile.Load(*path, nil)
	if err != nil {
		return err
	}
	t, err := cfg.VS()
	if err != nil {
		return err
	}
	o := replay.Options{MTU: *mtu, MACs: map[netip.Addr][6]byte{}, Capacity: cfg.Table.Capacity}
	hw, err := net.ParseMAC(*mac)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("--mac %q: must be a 6-byte MAC such as 02:00:00:00:00:02", *mac)
	}
	copy(o.MAC[:], hw)
	if o.Addr, err = netip.ParseAddr(*addr); err != nil || !o.Addr.Is4() {
		return fmt.Errorf("--addr %q: must be an IPv4 address", *addr)
	}
	if *mtu < 68 || *mtu > 65535 {
		return fmt.Errorf("--mtu %d: must be 68..65535", *mtu)
	}
	for _, kv := range *neigh {
		ip, m, ok := strings.Cut(kv, "=")
		a, err1 := netip.ParseAddr(ip)
		hw, err2 := net.ParseMAC(m)
		if !ok || err1 != nil || err2 != nil || len(hw) != 6 {
			return fmt.Errorf("--neigh %q: must be IP=MAC", kv)
		}
		o.MACs[a] = [6]byte(hw)
	}
	in, err := os.Open(*inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(*outPath)
	if err != nil {
		return err
	}
	sum, err := replay.Run(t, in, out, o)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("in %d  forwarded %d  icmp replies %d  dropped %d\n", sum.In, sum.Forwarded, sum.Replies, sum.Dropped)
	var reasons []string
	for r := range sum.Drops {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Printf("  drop %-22s %d\n", r, sum.Drops[r])
	}
	return nil
}
