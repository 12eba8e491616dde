package config

import (
	"strings"
	"testing"
	"time"
)

// TestServiceHealthTimingValidation: a service's interval, timeout, rise
// and fall are refused, naming services[N].health.<key>, when negative or
// when the timeout (its own or health.timeout) exceeds the service's
// interval (its own or health.interval), as health.timeout above
// health.interval is refused at the top level.
func TestServiceHealthTimingValidation(t *testing.T) {
	on := HealthConfig{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Type: "tcp", OnFailure: "quiesce"}
	cases := []struct {
		name string
		h    ServiceHealth
		want []string // nil: accepted
	}{
		{"timing only", ServiceHealth{Interval: 5 * time.Second, Rise: 1, Fall: 4}, nil},
		{"own timeout within own interval", ServiceHealth{Type: "http", Interval: 300 * time.Millisecond, Timeout: 200 * time.Millisecond}, nil},
		{"longer interval keeps top timeout", ServiceHealth{Interval: time.Minute}, nil},
		{"negative interval", ServiceHealth{Interval: -time.Second}, []string{"services[1].health.interval", "-1s", "negative"}},
		{"negative timeout", ServiceHealth{Timeout: -time.Second}, []string{"services[1].health.timeout", "-1s"}},
		{"negative rise", ServiceHealth{Rise: -1}, []string{"services[1].health.rise/fall", "-1/0"}},
		{"negative fall", ServiceHealth{Fall: -2}, []string{"services[1].health.rise/fall", "0/-2"}},
		{"own timeout above own interval", ServiceHealth{Interval: time.Second, Timeout: 3 * time.Second},
			[]string{"services[1].health.timeout", "3s", "at most the service's interval (1s)"}},
		{"own timeout above top interval", ServiceHealth{Timeout: 3 * time.Second},
			[]string{"services[1].health.timeout", "3s", "(2s)"}},
		{"top timeout above own interval", ServiceHealth{Interval: 500 * time.Millisecond},
			[]string{"services[1].health.timeout", "1s (health.timeout)", "(500ms)"}},
		{"path without a type", ServiceHealth{Path: "/x"}, []string{"services[1].health.type", "need a type"}},
	}
	for _, tc := range cases {
		c := base()
		c.Health = on
		c.Services = append(c.Services, c.Services[0])
		c.Services[1].Port = 81
		h := tc.h
		c.Services[1].Health = &h
		err := c.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	// Timing alone still needs checks on.
	c := base()
	c.Services[0].Health = &ServiceHealth{Interval: time.Second}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "health.interval above 0") {
		t.Errorf("timing with checks off: %v", err)
	}
}
