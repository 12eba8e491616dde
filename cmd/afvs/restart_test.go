package main

import (
	"slices"
	"testing"
	"time"

	"github.com/afvs/afvs/config"
)

// TestRestartOnlyNamesWhatReloadCannotChange checks that a reload which
// changes a start-time setting is told so, key by key.
func TestRestartOnlyNamesWhatReloadCannotChange(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{Interfaces: []string{"eth0"}, Frames: 4096,
			Table:  config.TableConfig{Capacity: 1024, Templates: 64},
			ICMP:   config.ICMPConfig{Rate: 1000, Burst: 50, HostInterval: time.Second, HostBurst: 6},
			Health: config.HealthConfig{Interval: time.Second, Type: "exec", Command: []string{"/bin/true", "{addr}"}}}
	}
	if keys := restartOnly(base(), base()); len(keys) != 0 {
		t.Fatalf("identical configs: %v", keys)
	}
	cur := base()
	cur.ICMP.Rate = 10
	cur.Health.Command = []string{"/bin/true", "{port}"}
	cur.Table.Capacity = 2048
	cur.VIPMACs = map[string]string{"eth0": "00:00:5e:00:01:33"}
	cur.Services = []config.ServiceConfig{{Proto: "tcp", Address: "198.19.0.1", Port: 80}}
	keys := restartOnly(base(), cur)
	for _, want := range []string{"icmp", "table", "vip_macs"} {
		if !slices.Contains(keys, want) {
			t.Errorf("restartOnly %v lacks %q", keys, want)
		}
	}
	if slices.Contains(keys, "services") {
		t.Errorf("services reload live, but restartOnly says %v", keys)
	}
	if slices.Contains(keys, "health") {
		t.Errorf("health reloads live (Server.SetHealth), but restartOnly says %v", keys)
	}
	cur = base()
	cur.Poll = config.PollConfig{Mode: "busy", Spin: time.Millisecond}
	if keys := restartOnly(base(), cur); len(keys) != 0 {
		t.Errorf("poll reloads live (Director.SetPoll), but restartOnly says %v", keys)
	}
}

// TestServiceChecks builds the control plane's per-service checks from a
// config: only the service with a health section gets one, with its port.
func TestServiceChecks(t *testing.T) {
	w := 1
	c := &config.Config{Services: []config.ServiceConfig{
		{Proto: "tcp", Address: "198.19.0.1", Port: 80, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}}},
		{Proto: "udp", Address: "198.19.0.1", Port: 53, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}},
			Health: &config.ServiceHealth{Type: "exec", Command: []string{"/bin/true"}, Port: 5353}},
	}}
	m, err := serviceChecks(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 {
		t.Fatalf("%d services with their own check, want 1", len(m))
	}
	for k, sc := range m {
		if k.Proto.String() != "udp" || k.Port != 53 || sc.Port != 5353 || !sc.Exec || sc.Dial == nil {
			t.Fatalf("service %v: check %+v", k, sc)
		}
	}
}
