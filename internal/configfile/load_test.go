package configfile

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
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

// TestSyncKeys: the sync section and the sync sysctls load into what the
// sync daemon runs with, and each bad value is refused naming its key.
func TestSyncKeys(t *testing.T) {
	load := func(extra string) (*config.Config, error) {
		path := filepath.Join(t.TempDir(), "afvs.yaml")
		if err := os.WriteFile(path, []byte(fileYAML+extra), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(path, nil)
	}
	c, err := load("sync:\n  master: {interface: eth1, syncid: 7, maxlen: 1400, group: 239.1.2.3, port: 9000, ttl: 2}\n  backup: {interface: eth2}\n  flush_interval: 500ms\n")
	if err != nil {
		t.Fatal(err)
	}
	ds := c.SyncDaemons()
	want := []ipvsadm.Daemon{
		{State: ipvsadm.Master, McastIfn: "eth1", SyncID: 7, SyncMaxlen: 1400, McastGroup: netip.MustParseAddr("239.1.2.3"), McastPort: 9000, McastTTL: 2},
		{State: ipvsadm.Backup, McastIfn: "eth2"},
	}
	if !reflect.DeepEqual(ds, want) || c.Sync.FlushInterval != 500*time.Millisecond {
		t.Errorf("daemons %+v flush %v, want %+v and 500ms", ds, c.Sync.FlushInterval, want)
	}
	// An IPv6 group, as the kernel's IPVS_DAEMON_ATTR_MCAST_GROUP6.
	c6, err := load("sync:\n  master: {interface: eth1, syncid: 7, group: \"ff02::51\", ttl: 1}\n  backup: {interface: eth1, syncid: 7, group: \"FF05::8848\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	want6 := []ipvsadm.Daemon{
		{State: ipvsadm.Master, McastIfn: "eth1", SyncID: 7, McastGroup: netip.MustParseAddr("ff02::51"), McastTTL: 1},
		{State: ipvsadm.Backup, McastIfn: "eth1", SyncID: 7, McastGroup: netip.MustParseAddr("ff05::8848")},
	}
	if ds := c6.SyncDaemons(); !reflect.DeepEqual(ds, want6) {
		t.Errorf("IPv6 groups: daemons %+v, want %+v", ds, want6)
	}
	if s := c.SyncSettings(); s != ipvssync.DefaultSettings {
		t.Errorf("default sync settings %+v, want the kernel's %+v", s, ipvssync.DefaultSettings)
	}
	c, err = load("ipvs: {sync_threshold: [0, 0], sync_refresh_period: 10s, sync_retries: 2, sync_persist_mode: 1}\n")
	if err != nil {
		t.Fatal(err)
	}
	if s, w := c.SyncSettings(), (ipvssync.Settings{Threshold: 0, Period: 0, RefreshPeriod: 10 * ipvssync.HZ, Retries: 2, PersistMode: true}); s != w {
		t.Errorf("sync settings %+v, want %+v", s, w)
	}
	for _, tc := range []struct{ extra, want string }{
		{"sync: {master: {syncid: 3}}\n", "sync.master.interface: required"},
		{"sync: {backup: {interface: eth1, syncid: 256}}\n", "sync.backup.syncid: 256: must be 0..255"},
		{"sync: {master: {interface: eth1, maxlen: 70000}}\n", "sync.master.maxlen: 70000"},
		{"sync: {master: {interface: eth1, group: 198.18.0.1}}\n", `sync.master.group: "198.18.0.1": not an IPv4 multicast address (224.0.0.0/4)`},
		{"sync: {master: {interface: eth1, group: 224.0.0}}\n", `sync.master.group: "224.0.0": must be an IPv4 or IPv6 multicast address`},
		{"sync: {backup: {interface: eth1, group: \"2001:2::1\"}}\n", `sync.backup.group: "2001:2::1": not an IPv6 multicast address (ff00::/8)`},
		{"sync: {backup: {interface: eth1, group: \"::ffff:224.0.0.81\"}}\n", `sync.backup.group: "::ffff:224.0.0.81": not an IPv6 multicast address`},
		{"sync: {master: {interface: eth1, group: \"ff01::51\"}}\n", `sync.master.group: "ff01::51": multicast scope 1 (interface-local or reserved) never leaves the host`},
		{"sync: {master: {interface: eth1, group: \"ff02::51%eth1\"}}\n", `sync.master.group: "ff02::51%eth1": must not have a zone`},
		{"sync: {master: {interface: eth1, ttl: 300}}\n", "sync.master.ttl: 300: must be 0 (1) or 1..255"},
		{"sync: {master: {interface: eth1, mtu: 9000}}\n", "mtu"},
		{"sync: {flush_interval: 2h}\n", "sync.flush_interval: 2h0m0s"},
		{"ipvs: {sync_threshold: [50, 3]}\n", "ipvs.sync_threshold: [50 3]"},
		{"ipvs: {sync_threshold: [3]}\n", "ipvs.sync_threshold: [3]"},
		{"ipvs: {sync_threshold: [3, 16777216]}\n", "ipvs.sync_threshold: [3 16777216]: must be [threshold, period] with 0 <= threshold < period, or period 0, each at most 16777215"},
		{"ipvs: {sync_retries: 4}\n", "ipvs.sync_retries: 4: must be 0..3"},
		{"ipvs: {sync_persist_mode: 2}\n", "ipvs.sync_persist_mode: 2: must be 0 or 1"},
	} {
		if _, err := load(tc.extra); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.extra, err, tc.want)
		}
	}
}
