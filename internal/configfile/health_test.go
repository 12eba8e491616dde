package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/config"
)

// TestServiceHealthTiming: a service's health section takes interval,
// timeout, rise and fall as the top-level one does ("2s" or plain
// seconds); left out, they stay 0, which means the top-level values.
func TestServiceHealthTiming(t *testing.T) {
	path := filepath.Join(t.TempDir(), "afvs.yaml")
	body := "interfaces: [eth0]\n" +
		"health: {interval: 2s, timeout: 1s, rise: 2, fall: 3}\n" +
		"services:\n" +
		"  - {proto: tcp, address: 198.19.0.1, port: 80, reals: [{address: 198.18.0.11}], health: {interval: 500ms, timeout: 0.25, rise: 1, fall: 5}}\n" +
		"  - {proto: tcp, address: 198.19.0.2, port: 80, reals: [{address: 198.18.0.11}], health: {type: http, fall: 1}}\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []config.ServiceHealth{*c.Services[0].Health, *c.Services[1].Health}
	if h := got[0]; h.Type != "" || h.Interval != 500*time.Millisecond || h.Timeout != 250*time.Millisecond || h.Rise != 1 || h.Fall != 5 {
		t.Errorf("service 0: %+v", h)
	}
	if h := got[1]; h.Type != "http" || h.Interval != 0 || h.Timeout != 0 || h.Rise != 0 || h.Fall != 1 {
		t.Errorf("service 1: %+v", h)
	}
	// A misspelt key is an error, not a silent top-level value.
	bad := strings.Replace(body, "fall: 5", "falls: 5", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "falls") {
		t.Errorf("misspelt key: %v", err)
	}
}
