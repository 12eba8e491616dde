package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testnet"
)

// TestAfvsadmOpensEgress starts afvs with no services in the LVS manual's
// two-interface layout (clients on eth0, real servers behind eth1, which
// afvs has not opened), configures the whole service with afvsadm, and
// passes HTTP through it: eth1 opens when the first real server behind it
// is added, closes when the last leaves, and opens again on a restore.
// A real server on the director's own address is the local node.
func TestAfvsadmOpensEgress(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", TwoInterfaces: true, Weights: []int{1, 1}, NoDirector: true})
	writeLabConfig(t, lab, emptyConfig(lab))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "rr")
	for _, a := range lab.RealAddrs {
		mustAfvsadm(t, lab, "-a", "-t", vip, "-r", a.String(), "-g", "-w", "1")
	}
	get := func(step string) {
		t.Helper()
		const n = 100
		res := lab.Get(n, 4)
		if res.OK != n {
			t.Fatalf("%s: %d of %d requests answered: %v", step, res.OK, n, res.Errors)
		}
		for _, name := range lab.Names {
			if res.By[name] != n/len(lab.Names) {
				t.Errorf("%s: rr: %s answered %d, want %d", step, name, res.By[name], n/len(lab.Names))
			}
		}
	}
	get("after -a")
	if c := strings.Count(lab.DirectorLog(), "egress interface opened"); c != 1 || !strings.Contains(lab.DirectorLog(), "dev=eth1") {
		t.Errorf("want eth1 opened once, log says so %d times", c)
	}
	for _, a := range lab.RealAddrs {
		mustAfvsadm(t, lab, "-d", "-t", vip, "-r", a.String())
	}
	waitLog(t, lab, "egress interface closed", 1)
	restore := "-a -t " + vip + " -r " + lab.RealAddrs[0].String() + " -g -w 1\n-a -t " + vip + " -r " + lab.RealAddrs[1].String() + " -g -w 1\n"
	if _, errOut, err := afvsadm(t, lab, restore, "-R"); err != nil {
		t.Fatalf("afvsadm -R: %v: %s", err, errOut)
	}
	get("after -R")
	if c := strings.Count(lab.DirectorLog(), "egress interface opened"); c != 2 {
		t.Errorf("eth1 opened %d times, want 2", c)
	}
	// The director's own address (its eth1) is the local node: accepted
	// and listed as Local, opening no egress interface.
	mustAfvsadm(t, lab, "-a", "-t", vip, "-r", "198.18.1.1", "-g", "-w", "1")
	if out := mustAfvsadm(t, lab, "-L", "-n"); !strings.Contains(out, "  -> 198.18.1.1:80                Local   1      ") {
		t.Errorf("the director's own address is not listed as Local:\n%s", out)
	}
	if c := strings.Count(lab.DirectorLog(), "egress interface opened"); c != 2 {
		t.Errorf("eth1 opened %d times, want 2", c)
	}
}
