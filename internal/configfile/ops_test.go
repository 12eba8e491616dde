package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOPSKey: a service's ops key is ipvsadm's -o. It loads into the
// service's one-packet flag for a udp or fwmark service and is refused,
// naming the key, for a tcp one (ipvsadm refuses -o there too).
func TestOPSKey(t *testing.T) {
	load := func(t *testing.T, svc string) (bool, error) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "afvs.yaml")
		body := "interfaces: [eth0]\n" +
			"marks: [{mark: 5, name: dns, matches: [{proto: udp, address: 198.19.0.2, ports: \"53\"}]}]\n" +
			"services:\n  - " + strings.TrimSuffix(svc, "}") + ", reals: [{address: 198.18.0.11}]}\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			return false, err
		}
		tbl, err := c.VS()
		if err != nil {
			return false, err
		}
		return tbl.Services[0].OnePacket, nil
	}
	for _, tc := range []struct {
		svc  string
		want bool
	}{
		{"{proto: udp, address: 198.19.0.1, port: 53, ops: true}", true},
		{"{proto: udp, address: 198.19.0.1, port: 53, ops: false}", false},
		{"{proto: udp, address: 198.19.0.1, port: 53}", false},
		{"{fwmark: 5, ops: true}", true},
	} {
		got, err := load(t, tc.svc)
		if err != nil || got != tc.want {
			t.Errorf("%s: one-packet %v, error %v; want %v", tc.svc, got, err, tc.want)
		}
	}
	_, err := load(t, "{proto: tcp, address: 198.19.0.1, port: 80, ops: true}")
	if err == nil || !strings.Contains(err.Error(), "services[0].ops") || !strings.Contains(err.Error(), "UDP") {
		t.Errorf("ops on a tcp service: %v, want a refusal naming services[0].ops", err)
	}
}
