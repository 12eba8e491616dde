package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const fileYAML = `
interfaces: [eth0, eth1]
table: {capacity: 100000, templates: 1000}
timeouts: {tcp: 15m, tcpfin: 2m, udp: 300}
metrics: {address: "127.0.0.1:9470"}
control: {socket: /run/afvs/test.sock}
services:
  - proto: tcp
    address: 198.19.0.1
    port: 80
    scheduler: wlc
    reals:
      - {address: 198.18.0.11, weight: 1}
`

func TestEnvironmentAndFlagOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "afvs.yaml")
	if err := os.WriteFile(path, []byte(fileYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AFVS_TABLE_CAPACITY", "1234")
	t.Setenv("AFVS_TIMEOUTS_UDP", "45s")
	t.Setenv("AFVS_METRICS_ADDRESS", "127.0.0.1:9999")
	t.Setenv("AFVS_LOG_LEVEL", "debug")
	t.Setenv("AFVS_INTERFACES", "veth7")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Table.Capacity != 1234 || c.Timeouts.UDP != 45*time.Second || c.Metrics.Address != "127.0.0.1:9999" || c.Log.Level != "debug" ||
		len(c.Interfaces) != 1 || c.Interfaces[0] != "veth7" {
		t.Errorf("environment not applied: capacity %d udp %v metrics %q log %q interfaces %v", c.Table.Capacity, c.Timeouts.UDP, c.Metrics.Address, c.Log.Level, c.Interfaces)
	}
	if c.Table.Templates != 1000 || c.Timeouts.TCP != 15*time.Minute {
		t.Errorf("keys without an override lost their file values: %+v %+v", c.Table, c.Timeouts)
	}
	// Flags beat the environment.
	fs := pflag.NewFlagSet("afvs run", pflag.ContinueOnError)
	fs.String("xdp-mode", "auto", "")
	fs.String("metrics", "", "")
	fs.String("socket", "", "")
	fs.String("log-level", "info", "")
	fs.StringSlice("interface", nil, "")
	if err := fs.Parse([]string{"--metrics", "127.0.0.1:7000", "--socket", "/tmp/x.sock", "--interface", "a0,b0", "--xdp-mode", "generic"}); err != nil {
		t.Fatal(err)
	}
	c, err = Load(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metrics.Address != "127.0.0.1:7000" || c.Control.Socket != "/tmp/x.sock" || c.XDPMode != "generic" || strings.Join(c.Interfaces, ",") != "a0,b0" || c.Log.Level != "debug" {
		t.Errorf("flags not applied: %+v", c)
	}
	// A bad value from the environment is refused like one from the file.
	t.Setenv("AFVS_TABLE_CAPACITY", "0")
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "table.capacity: 0") {
		t.Errorf("AFVS_TABLE_CAPACITY=0: %v", err)
	}
	t.Setenv("AFVS_TABLE_CAPACITY", "lots")
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("AFVS_TABLE_CAPACITY=lots: %v", err)
	}
}

// TestBuiltinAndExtensions: without a path Load reads the built-in
// default (the demo lab's service); a file must be YAML, TOML or JSON by
// its extension.
func TestBuiltinAndExtensions(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 1 || c.Services[0].Address != "198.19.0.1" || c.Services[0].Port != 80 || len(c.Services[0].Reals) != 3 {
		t.Errorf("built-in config: %+v", c.Services)
	}
	ini := filepath.Join(t.TempDir(), "afvs.ini")
	os.WriteFile(ini, []byte(fileYAML), 0o644)
	if _, err := Load(ini, nil); err == nil || !strings.Contains(err.Error(), ini) || !strings.Contains(err.Error(), ".yaml, .yml, .toml or .json") {
		t.Errorf("Load(%s): %v", ini, err)
	}
}

// TestPersistentTrue: persistent: true is a bare -p, 360 s as ipvsadm
// sends it (IPVS_SVC_PERSISTENT_TIMEOUT), not the one second a weak
// bool-to-int decoding gives; false is off; a number is seconds.
func TestPersistentTrue(t *testing.T) {
	for text, want := range map[string]uint32{"true": 360, "false": 0, "600": 600, `"30"`: 30} {
		path := filepath.Join(t.TempDir(), "afvs.yaml")
		body := "interfaces: [eth0]\nservices:\n  - proto: tcp\n    address: 198.19.0.1\n    port: 80\n" +
			"    persistent: " + text + "\n    reals: [{address: 198.18.0.11}]\n"
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path, nil)
		if err != nil {
			t.Fatalf("persistent: %s: %v", text, err)
		}
		tbl, err := c.VS()
		if err != nil {
			t.Fatal(err)
		}
		if s := tbl.Services[0]; s.Timeout != want || s.Persistent != (want != 0) {
			t.Errorf("persistent: %s: persistent %v timeout %d, want %d", text, s.Persistent, s.Timeout, want)
		}
	}
}
