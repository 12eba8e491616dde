package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/afvs/afvs/config"
)

// TestHealthChangesNamesKeys: a reload's health changes are named key by
// key, the top-level ones under health, a service's under its
// services[N].health; an untouched config names none.
func TestHealthChangesNamesKeys(t *testing.T) {
	w := 1
	base := func() *config.Config {
		return &config.Config{
			Health: config.HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Type: "tcp", OnFailure: "quiesce"},
			Services: []config.ServiceConfig{
				{Proto: "tcp", Address: "198.19.0.1", Port: 80, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}}},
				{Proto: "tcp", Address: "198.19.0.2", Port: 80, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}},
					Health: &config.ServiceHealth{Interval: 5 * time.Second}},
			}}
	}
	if ch := healthChanges(base(), base()); len(ch) != 0 {
		t.Fatalf("identical configs: %v", ch)
	}
	cur := base()
	cur.Health.Fall = 5
	cur.Services[0].Health = &config.ServiceHealth{Rise: 4}
	cur.Services[1].Health.Interval = 2 * time.Second
	// Reordered: the service is named by its new place.
	cur.Services[0], cur.Services[1] = cur.Services[1], cur.Services[0]
	var got []string
	for _, c := range healthChanges(base(), cur) {
		got = append(got, fmt.Sprintf("%s %v->%v", c.key, c.old, c.new))
	}
	want := []string{"health.fall 3->5", "services[0].health.interval 5s->2s", "services[1].health.rise 0->4"}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
}

// TestServiceChecksTiming: a service's interval, timeout, rise and fall
// reach the control plane's check; a section with timing only keeps the
// top-level check (no Dial of its own).
func TestServiceChecksTiming(t *testing.T) {
	w := 1
	c := &config.Config{Services: []config.ServiceConfig{
		{Proto: "tcp", Address: "198.19.0.1", Port: 80, Scheduler: "rr", Reals: []config.RealConfig{{Address: "198.18.0.11", Weight: &w}},
			Health: &config.ServiceHealth{Interval: 3 * time.Second, Timeout: time.Second, Rise: 4, Fall: 6}},
	}}
	m, err := serviceChecks(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range m {
		if sc.Interval != 3*time.Second || sc.Timeout != time.Second || sc.Rise != 4 || sc.Fall != 6 || sc.Dial != nil {
			t.Fatalf("check %+v", sc)
		}
	}
	if len(m) != 1 {
		t.Fatalf("%d checks", len(m))
	}
}
