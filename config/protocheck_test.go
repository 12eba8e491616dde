package config

import (
	"strings"
	"testing"
	"time"
)

// TestProtoCheckValidation: types dns and smtp and the digest of http and
// https are accepted at the top level and per service; a bad value or an
// option of another type's is refused naming its key and value.
func TestProtoCheckValidation(t *testing.T) {
	const md5 = "0123456789abcdef0123456789ABCDEF"
	on := func(h HealthConfig) HealthConfig {
		h.Interval, h.Timeout, h.Rise, h.Fall, h.OnFailure = 2*time.Second, time.Second, 2, 3, "quiesce"
		if h.Path == "" {
			h.Path, h.Status = "/", 200
		}
		return h
	}
	top := []struct {
		name string
		h    HealthConfig
		want []string // nil: accepted
	}{
		{"dns defaults", HealthConfig{Type: "dns"}, nil},
		{"dns options", HealthConfig{Type: "dns", DNSType: "aaaa", DNSName: "www.example.test."}, nil},
		{"dns root", HealthConfig{Type: "dns", DNSType: "NS", DNSName: "."}, nil},
		{"smtp", HealthConfig{Type: "smtp", HELOName: "director.example.test"}, nil},
		{"smtp default helo", HealthConfig{Type: "smtp"}, nil},
		{"http digest", HealthConfig{Type: "http", Digest: md5}, nil},
		{"https digest", HealthConfig{Type: "https", Digest: md5}, nil},
		{"bad type", HealthConfig{Type: "dns_check"}, []string{"health.type", `"dns_check"`, "dns, smtp"}},
		{"bad dns_type", HealthConfig{Type: "dns", DNSType: "PTR"}, []string{"health.dns_type", `"PTR"`, "A, NS"}},
		{"empty label", HealthConfig{Type: "dns", DNSName: "www..test"}, []string{"health.dns_name", `"www..test"`}},
		{"long label", HealthConfig{Type: "dns", DNSName: strings.Repeat("x", 64) + ".test"}, []string{"health.dns_name"}},
		{"space in name", HealthConfig{Type: "dns", DNSName: "a b.test"}, []string{"health.dns_name", `"a b.test"`}},
		{"dns_name for tcp", HealthConfig{Type: "tcp", DNSName: "x.test"}, []string{"health.dns_name", `"x.test"`, "only for type dns", `"tcp"`}},
		{"helo with CRLF", HealthConfig{Type: "smtp", HELOName: "a\r\nRCPT TO:<x>"}, []string{"health.helo_name"}},
		{"helo for http", HealthConfig{Type: "http", HELOName: "a.test"}, []string{"health.helo_name", "only for type smtp"}},
		{"short digest", HealthConfig{Type: "http", Digest: "abc"}, []string{"health.digest", `"abc"`, "32 hex digits"}},
		{"short even digest", HealthConfig{Type: "http", Digest: "abcd"}, []string{"health.digest", `"abcd"`}},
		{"long digest", HealthConfig{Type: "http", Digest: md5 + "00"}, []string{"health.digest"}},
		{"non-hex digest", HealthConfig{Type: "http", Digest: strings.Repeat("g", 32)}, []string{"health.digest", "32 hex digits"}},
		{"digest for dns", HealthConfig{Type: "dns", Digest: md5}, []string{"health.digest", "only for type http or https"}},
		{"http virtualhost", HealthConfig{Type: "http", VirtualHost: "www.example.test"}, nil},
		{"https virtualhost with port", HealthConfig{Type: "https", VirtualHost: "www.example.test:8443"}, nil},
		{"virtualhost for tcp", HealthConfig{Type: "tcp", VirtualHost: "www.example.test"}, []string{"health.virtualhost", `"www.example.test"`, "only for type http or https"}},
		{"virtualhost with a space", HealthConfig{Type: "http", VirtualHost: "www example.test"}, []string{"health.virtualhost"}},
		{"virtualhost with CRLF", HealthConfig{Type: "http", VirtualHost: "a.test\r\nX-Injected: 1"}, []string{"health.virtualhost"}},
		{"long virtualhost", HealthConfig{Type: "http", VirtualHost: strings.Repeat("a", 256)}, []string{"health.virtualhost", "at most 255"}},
	}
	for _, tc := range top {
		c := base()
		c.Health = on(tc.h)
		check(t, "top "+tc.name, c.Validate(), tc.want)
	}
	svc := []struct {
		name string
		h    ServiceHealth
		want []string
	}{
		{"dns", ServiceHealth{Type: "dns", DNSType: "A", DNSName: "example.test", Port: 53}, nil},
		{"smtp", ServiceHealth{Type: "smtp", HELOName: "d.test"}, nil},
		{"http digest", ServiceHealth{Type: "http", Digest: md5}, nil},
		{"bad dns_type", ServiceHealth{Type: "dns", DNSType: "ANY"}, []string{"services[0].health.dns_type", `"ANY"`}},
		{"dns_name without a type", ServiceHealth{DNSName: "x.test"}, []string{"services[0].health.dns_name", "only for type dns"}},
		{"digest for tcp", ServiceHealth{Type: "tcp", Digest: md5}, []string{"services[0].health.digest", "only for type http or https"}},
		{"bad digest", ServiceHealth{Type: "https", Digest: "xyz"}, []string{"services[0].health.digest", `"xyz"`}},
		{"helo for dns", ServiceHealth{Type: "dns", HELOName: "d.test"}, []string{"services[0].health.helo_name"}},
		{"https virtualhost", ServiceHealth{Type: "https", VirtualHost: "shop.example.test"}, nil},
		{"virtualhost for smtp", ServiceHealth{Type: "smtp", VirtualHost: "x.test"}, []string{"services[0].health.virtualhost", "only for type http or https"}},
	}
	for _, tc := range svc {
		c := base()
		c.Health = on(HealthConfig{Type: "tcp"})
		h := tc.h
		c.Services[0].Health = &h
		check(t, "service "+tc.name, c.Validate(), tc.want)
	}
}

func check(t *testing.T, name string, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s: accepted", name)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", name, err, w)
		}
	}
}
