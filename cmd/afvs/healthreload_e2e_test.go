package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// TestHealthReloadE2E: a reload (SIGHUP) that changes the health timing,
// top-level and the service's own, applies it while traffic flows and
// keeps each real server's state: the down one stays quiesced, the up
// ones keep their weight, throughout. A reload that turns checks off
// (interval 0) gives the quiesced server its weight back.
func TestHealthReloadE2E(t *testing.T) {
	// Exec checks pass while a flag file for the real server exists: rs3
	// has none, so it is down while its HTTP server keeps answering.
	flags := t.TempDir()
	for _, a := range []string{"198.18.0.11", "198.18.0.12"} {
		if err := os.WriteFile(filepath.Join(flags, "up-"+a), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	check := `type: exec, command: [/bin/sh, -c, "test -e ` + flags + `/up-$AFVS_REAL_ADDR"]`
	health := func(timing string) string { return "{" + check + ", " + timing + "}" }
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Scheduler: "rr", Weights: []int{1, 1, 1},
		Health: health("interval: 300ms, timeout: 250ms, rise: 1, fall: 1")})
	if lab.RealAddrs[2].String() != "198.18.0.13" {
		t.Fatalf("the lab's third real server is %s; the flag files assume 198.18.0.13", lab.RealAddrs[2])
	}
	weights := func() map[string]int32 {
		t.Helper()
		svcs, err := lab.Control().Services()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int32{}
		for _, r := range svcs[0].Reals {
			m[r.Address] = r.Weight
		}
		return m
	}
	rs1, rs2, rs3 := lab.RealAddrs[0].String(), lab.RealAddrs[1].String(), lab.RealAddrs[2].String()
	waitWeights := func(want map[string]int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			w := weights()
			if w[rs1] == want[rs1] && w[rs2] == want[rs2] && w[rs3] == want[rs3] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("weights %v, want %v", w, want)
			}
		}
	}
	// Up ones at 1; rs3 fails its first check (fall 1).
	waitWeights(map[string]int32{rs1: 1, rs2: 1, rs3: 0})
	ka := startKeepAlive(t, lab, 4)
	ka.waitReqs(t, 20)

	// Longer intervals, a larger fall at the top and the service's own
	// interval and rise. Had the states been reset, rs3 would count as up
	// (weight 1) until 3 failures at 1 s had passed.
	cfg := strings.Replace(lab.Config(), "health: "+health("interval: 300ms, timeout: 250ms, rise: 1, fall: 1"),
		"health: "+health("interval: 1s, timeout: 900ms, rise: 1, fall: 3"), 1)
	cfg = strings.Replace(cfg, "    forward: dr\n", "    forward: dr\n    health: {interval: 700ms, timeout: 600ms, rise: 2}\n", 1)
	if !strings.Contains(cfg, "fall: 3") || !strings.Contains(cfg, "interval: 700ms") {
		t.Fatalf("config edit did not take:\n%s", cfg)
	}
	writeLabConfig(t, lab, cfg)
	r := ka.check(t, "before reload")
	if err := lab.DirectorProcess().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lab, "reloaded configuration", 1)
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if w := weights(); w[rs1] != 1 || w[rs2] != 1 || w[rs3] != 0 {
			t.Fatalf("after a reload of the health timing, weights %v: want rs1 and rs2 at 1 and rs3 still at 0", w)
		}
	}
	log := lab.DirectorLog()
	for _, want := range []string{"key=health.fall old=1 new=3", "key=health.interval old=300ms new=1s", "key=services[0].health.interval old=0s new=700ms", "key=services[0].health.rise old=0 new=2", "key=services[0].health.timeout old=0s new=600ms"} {
		if !strings.Contains(log, want) {
			t.Errorf("the director did not log %q", want)
		}
	}
	if strings.Contains(log, "key=health") && strings.Contains(log, "takes effect only at restart") {
		t.Errorf("the director still says health needs a restart:\n%s", log)
	}
	ka.waitReqs(t, r+40)
	r = ka.check(t, "after the timing reload")

	// Checks off: rs3 back at its weight, and taking requests. (A
	// service's own health section needs checks on, so it goes too.)
	off := strings.Replace(lab.Config(), "interval: 300ms,", "interval: 0s,", 1)
	if off == lab.Config() {
		t.Fatal("config edit did not take")
	}
	writeLabConfig(t, lab, off)
	if err := lab.DirectorProcess().Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lab, "reloaded configuration", 2)
	waitWeights(map[string]int32{rs1: 1, rs2: 1, rs3: 1})
	waitLog(t, lab, "health checks off", 1)
	if res := lab.Get(30, 3); res.OK != 30 || res.By["rs3"] == 0 {
		t.Fatalf("with checks off: %+v", res)
	}
	ka.waitReqs(t, r+40)
	ka.halt()
	ka.check(t, "after checks were turned off")
}
