package main

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// activeConns reads ActiveConn of real server addr from `afvsadm -L -n`.
func activeConns(t *testing.T, lab *testnet.Lab, addr netip.AddrPort) int {
	t.Helper()
	out := mustAfvsadm(t, lab, "-L", "-n")
	m := regexp.MustCompile(`(?m)^  -> ` + regexp.QuoteMeta(addr.String()) + `\s+\S+\s+\d+\s+(\d+)\s+\d+\s*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s not listed:\n%s", addr, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestKeepAliveAcrossDelAndAdd is the reproduction with real
// sessions: 12 HTTP keep-alive connections over two real servers; `-d`
// one, `-a` it again 0.2 s later; then a reload without it and one with
// it. The kernel takes the dest back from the trash (ip_vs_trash_get_dest),
// so every session carries on (a request sent meanwhile is retransmitted
// by TCP) and the server lists its connections again. Before, half the
// sessions hung: their frames were dropped as dest_unavailable.
func TestKeepAliveAcrossDelAndAdd(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", NoDirector: true, Scheduler: "rr", Weights: []int{1, 1}})
	writeLabConfig(t, lab, serviceConfig(lab, "rr", 1, 1))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	ka := startKeepAlive(t, lab, 12)
	ka.waitReqs(t, 120)
	r := ka.check(t, "before")
	vip := netip.AddrPortFrom(lab.VIP, lab.Port).String()
	rs2 := netip.AddrPortFrom(lab.RealAddrs[1], lab.Port)
	if n := activeConns(t, lab, rs2); n != 6 {
		t.Fatalf("rs2 has %d active connections, want 6 of the 12", n)
	}

	mustAfvsadm(t, lab, "-d", "-t", vip, "-r", rs2.String())
	time.Sleep(200 * time.Millisecond)
	mustAfvsadm(t, lab, "-a", "-t", vip, "-r", rs2.String(), "-g", "-w", "1")
	if n := activeConns(t, lab, rs2); n != 6 {
		t.Errorf("re-added rs2 lists %d active connections, want its 6", n)
	}
	// A session stuck on a server it lost fails its 3 s deadline.
	time.Sleep(3500 * time.Millisecond)
	ka.waitReqs(t, r+120)
	r = ka.check(t, "after -d and -a")

	writeLabConfig(t, lab, serviceConfig(lab, "rr", 1, -1))
	if err := lab.Control().Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	writeLabConfig(t, lab, serviceConfig(lab, "rr", 1, 1))
	if err := lab.Control().Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	ka.waitReqs(t, r+120)
	r = ka.check(t, "after a reload without rs2 and one with it")

	// The issue's §2 scenario: a reload without rs2 that is refused late
	// (its firewall-mark group collides with the service's port, found
	// when the keys are compiled), then a neighbour change, whose rebuild
	// must keep rs2's ID. (The trash alone would now give the ID back
	// too; TestCompileRefusedChangesNothing checks that the refused table
	// leaves the registry and the thresholds untouched.)
	bad := serviceConfig(lab, "rr", 1, -1) + fmt.Sprintf("  - {fwmark: 5, scheduler: rr}\nmarks: [{mark: 5, matches: [{proto: tcp, address: %s, ports: \"%d\"}]}]\n", lab.VIP, lab.Port)
	writeLabConfig(t, lab, bad)
	if err := lab.Control().Reload(); err == nil || !strings.Contains(err.Error(), "already served by") {
		t.Fatalf("reload of a colliding mark group answered %v", err)
	}
	if err := lab.Director.IP("neigh", "add", "198.18.0.250", "lladdr", "02:00:00:00:00:fa", "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	ka.waitReqs(t, r+120)
	ka.halt()
	total := ka.check(t, "after a refused reload and a neighbour change")
	if st, err := lab.Control().Status(); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%d requests on 12 sessions; dest_unavailable drops %d (frames sent while rs2 was out)", total, st.Drops["dest_unavailable"])
	}
}
