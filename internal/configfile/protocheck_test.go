package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afvs/afvs/config"
)

// TestProtoCheckKeys: digest, dns_type, dns_name and helo_name load from a
// file at the top level and per service; left out they stay empty (the
// defaults apply where the checks are built), and a bad value fails the
// load naming its key.
func TestProtoCheckKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "afvs.yaml")
	body := "interfaces: [eth0]\n" +
		"health: {interval: 2s, type: http, digest: 9E107D9D372BB6826BD81D3542A419D6}\n" +
		"services:\n" +
		"  - {proto: udp, address: 198.19.0.1, port: 53, reals: [{address: 198.18.0.11}], health: {type: dns, dns_type: A, dns_name: www.example.test}}\n" +
		"  - {proto: tcp, address: 198.19.0.1, port: 25, reals: [{address: 198.18.0.11}], health: {type: smtp, helo_name: director.example.test}}\n" +
		"  - {proto: tcp, address: 198.19.0.1, port: 53, reals: [{address: 198.18.0.11}], health: {type: dns}}\n"
	load := func(body string) (*config.Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(path, nil)
	}
	c, err := load(body)
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Health; h.Type != "http" || h.Digest != "9E107D9D372BB6826BD81D3542A419D6" || h.Path != "/" || h.Status != 200 || h.DNSType != "" || h.HELOName != "" {
		t.Errorf("top-level: %+v", h)
	}
	if h := c.Services[0].Health; h.Type != "dns" || h.DNSType != "A" || h.DNSName != "www.example.test" {
		t.Errorf("service 0: %+v", h)
	}
	if h := c.Services[1].Health; h.Type != "smtp" || h.HELOName != "director.example.test" {
		t.Errorf("service 1: %+v", h)
	}
	if h := c.Services[2].Health; h.Type != "dns" || h.DNSType != "" || h.DNSName != "" {
		t.Errorf("service 2: defaults stay empty: %+v", h)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"dns_type: A", "dns_type: SRV", "services[0].health.dns_type"},
		{"dns_type: A", "dns_typ: A", "dns_typ"},
		{"helo_name: director.example.test", "helo_name: 'a b'", "services[1].health.helo_name"},
		{"digest: 9E107D9D372BB6826BD81D3542A419D6", "digest: 9E107D9D", "health.digest"},
		{"type: smtp", "type: tcp", "services[1].health.helo_name"},
	} {
		bad := strings.Replace(body, tc.from, tc.to, 1)
		if _, err := load(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: %v, want an error naming %s", tc.from, tc.to, err, tc.want)
		}
	}
}

// TestVirtualHostKey: virtualhost loads from a file at the top level and
// per service, and is refused with a check of another type, naming its
// key.
func TestVirtualHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "afvs.yaml")
	load := func(body string) (*config.Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(path, nil)
	}
	c, err := load("interfaces: [eth0]\n" +
		"health: {interval: 2s, type: https, virtualhost: www.example.test}\n" +
		"services:\n" +
		"  - {proto: tcp, address: 198.19.0.1, port: 80, reals: [{address: 198.18.0.11}], health: {type: http, virtualhost: \"shop.example.test:8080\"}}\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Health.VirtualHost != "www.example.test" || c.Services[0].Health.VirtualHost != "shop.example.test:8080" {
		t.Errorf("virtualhost: top %q, service %q", c.Health.VirtualHost, c.Services[0].Health.VirtualHost)
	}
	_, err = load("interfaces: [eth0]\n" +
		"health: {interval: 2s, type: tcp}\n" +
		"services:\n" +
		"  - {proto: tcp, address: 198.19.0.1, port: 80, reals: [{address: 198.18.0.11}], health: {type: tcp, virtualhost: www.example.test}}\n")
	if err == nil || !strings.Contains(err.Error(), "services[0].health.virtualhost") {
		t.Errorf("virtualhost with a tcp check: %v", err)
	}
}
