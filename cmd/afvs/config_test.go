package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/internal/configfile"
)

const goodYAML = `
interfaces: [eth0, eth1]
xdp_mode: native
cpus: {"eth0:0": 1}
table: {capacity: 100000, templates: 1000}
timeouts: {tcp: 15m, tcpfin: 2m, udp: 300}
metrics: {address: "127.0.0.1:9470"}
control: {socket: /run/afvs/test.sock}
health: {interval: 2s, timeout: 500ms, rise: 2, fall: 3}
marks:
  - mark: 7
    name: web
    matches: [{proto: tcp, address: 198.19.0.7, ports: "8000-8099"}]
services:
  - proto: tcp
    address: 198.19.0.1
    port: 80
    scheduler: wlc
    persistent: 300
    netmask: 255.255.255.0
    forward: dr
    reals:
      - {address: 198.18.0.11, weight: 1}
      - {address: 198.18.0.12, weight: 0, forward: tun, upper: 100, lower: 50}
  - proto: udp
    address: 198.19.0.2
    port: 53
    scheduler: sh
    sched_flags: [sh-port]
    reals: [{address: 198.18.0.13}]
  - fwmark: 7
    scheduler: rr
    reals: [{address: 198.18.0.14}]
`

const goodTOML = `
interfaces = ["eth0"]
[table]
capacity = 5000
[[services]]
proto = "tcp"
address = "198.19.0.1"
port = 80
scheduler = "rr"
  [[services.reals]]
  address = "198.18.0.11"
  weight = 2
`

const goodJSON = `{"interfaces": ["eth0"], "timeouts": {"tcp": "90s"},
 "services": [{"proto": "tcp", "address": "198.19.0.1", "port": 443, "scheduler": "mh", "sched_flags": ["mh-port"],
   "reals": [{"address": "198.18.0.11", "weight": 65535}, {"address": "198.18.0.12", "forward": "tun"}]}]}`

func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckGoodConfigs(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"afvs.yaml", goodYAML}, {"afvs.yml", "interfaces: [eth0]\n"}, {"afvs.toml", goodTOML}, {"afvs.json", goodJSON},
		{"sync6.yaml", "interfaces: [eth0]\nsync: {master: {interface: lo, group: \"ff02::51\"}, backup: {interface: lo, group: \"ff05::8848\"}}\n"},
	} {
		if err := runCheck([]string{"--config", writeConfig(t, tc.name, tc.text)}); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	c, err := configfile.Load(writeConfig(t, "afvs.yaml", goodYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeouts.TCP != 15*time.Minute || c.Timeouts.UDP != 300*time.Second || c.Health.Timeout != 500*time.Millisecond ||
		c.Table.Capacity != 100000 || c.CPUs["eth0:0"] != 1 || len(c.Services) != 3 || *c.Services[0].Reals[1].Weight != 0 {
		t.Errorf("decoded %+v", c)
	}
	// The IPVS sysctls default to the kernel's: conn_reuse_mode 1,
	// expire_nodest_conn 0, expire_quiescent_template 0.
	if got := c.Sysctls(); got != conntrack.DefaultSysctls() {
		t.Errorf("default sysctls %+v", got)
	}
	c2, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0]\nipvs: {conn_reuse_mode: 3, expire_nodest_conn: 1, expire_quiescent_template: 1, sloppy_tcp: 1}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.Sysctls(); got != (conntrack.Sysctls{ConnReuseMode: 3, ExpireNodestConn: true, ExpireQuiescentTemplate: true, SloppyTCP: true}) {
		t.Errorf("ipvs section decoded as %+v", got)
	}
	// The defences default to the kernel's: all off, amemthresh 1024,
	// am_droprate 10; and no SYN limit.
	if got := c.IPVSDefense(); got != conntrack.DefaultDefense() || c.SYNLimits() != (dataplane.SYNLimits{}) {
		t.Errorf("default defence %+v, SYN limits %+v", got, c.SYNLimits())
	}
	cd, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0]\nipvs: {drop_entry: 1, drop_packet: 2, secure_tcp: 3, amemthresh: 100, am_droprate: 4}\ndefense: {syn_rate_per_source: 50, syn_rate_per_service: 5000, burst: 20, block_factor: 8}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cd.IPVSDefense(); got != (conntrack.Defense{DropEntry: 1, DropPacket: 2, SecureTCP: 3, AmemThresh: 100, AmDropRate: 4}) {
		t.Errorf("ipvs defence decoded as %+v", got)
	}
	if got := cd.SYNLimits(); got != (dataplane.SYNLimits{PerSource: 50, PerService: 5000, Burst: 20, BlockFactor: 8}) {
		t.Errorf("defense section decoded as %+v", got)
	}
	t.Setenv("AFVS_IPVS_CONN_REUSE_MODE", "0")
	c3, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c3.IPVS.ConnReuseMode != 0 {
		t.Errorf("AFVS_IPVS_CONN_REUSE_MODE=0 gave conn_reuse_mode %d", c3.IPVS.ConnReuseMode)
	}
	c5, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0, eth1]\nvip_macs: {eth1: \"00:00:5E:00:01:33\"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c5.VIPMACsByInterface(); len(got) != 1 || got["eth1"] != [6]byte{0, 0, 0x5e, 0, 1, 0x33} {
		t.Errorf("vip_macs decoded as %v", got)
	}
	t.Setenv("AFVS_IPVS_SLOPPY_TCP", "1")
	c4, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c4.Sysctls().SloppyTCP {
		t.Errorf("AFVS_IPVS_SLOPPY_TCP=1 gave %+v", c4.Sysctls())
	}
	// poll: adaptive with a 50us spin unless set; a spin in any unit.
	if got := *pollConfig(c3); got != (director.PollConfig{Mode: director.PollAdaptive, Spin: 50 * time.Microsecond}) {
		t.Errorf("default poll decoded as %+v", got)
	}
	c6, err := configfile.Load(writeConfig(t, "afvs.yaml", "interfaces: [eth0]\npoll: {mode: busy, spin: 1ms}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := *pollConfig(c6); got != (director.PollConfig{Mode: director.PollBusy, Spin: time.Millisecond}) {
		t.Errorf("poll decoded as %+v", got)
	}
	tbl, err := c.VS()
	if err != nil {
		t.Fatal(err)
	}
	if r := tbl.Services[0].Reals[1]; r.Weight != 0 || r.Fwd.String() != "Tunnel" || r.Upper != 100 || r.Port != 80 {
		t.Errorf("real server decoded as %+v", r)
	}
	if r := tbl.Services[1].Reals[0]; r.Weight != 1 || r.Fwd.String() != "Route" {
		t.Errorf("defaults: real server decoded as %+v, want weight 1, Route", r)
	}
}

// Each bad config must be refused with an error that names the key path,
// the bad value and the rule.
func TestCheckBadConfigs(t *testing.T) {
	svc := func(extra string) string {
		return "interfaces: [eth0]\nservices:\n  - proto: tcp\n    address: 198.19.0.1\n    port: 80\n    scheduler: rr\n" + extra
	}
	for _, tc := range []struct {
		name, file, text string
		want             []string
	}{
		{"unknown top-level key", "a.yaml", "interfaces: [eth0]\ninterface: eth1\n", []string{"config: interface: unknown key"}},
		{"unknown nested key", "a.yaml", "interfaces: [eth0]\ntable: {capacty: 10}\n", []string{"table.capacty: unknown key"}},
		{"unknown service key", "a.yaml", svc("    weight: 3\n"), []string{"services[0].weight: unknown key"}},
		{"bad service address", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: 198.19.0.300, port: 80, scheduler: rr}]\n", []string{"services[0].address", "198.19.0.300", "not an IP address"}},
		{"IPv6 DR real of an IPv4 service", "a.yaml", svc("    reals: [{address: \"2001:2::11\"}]\n"), []string{"service TCP 198.19.0.1:80", "real server [2001:2::11]:80", "only for tunnel (-i)"}},
		{"IPv4-mapped service address", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: \"::ffff:198.19.0.1\", port: 80, scheduler: rr}]\n", []string{"services[0].address", "::ffff:198.19.0.1", "IPv4-mapped"}},
		{"IPv6 netmask not a prefix length", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: \"2001:2::1\", port: 80, scheduler: rr, persistent: 60, netmask: 255.255.255.0}]\n", []string{"services[0].netmask", "255.255.255.0", "prefix length 1..128"}},
		{"ipv6 key on an address service", "a.yaml", svc("    ipv6: true\n"), []string{"services[0].ipv6", "only a fwmark service"}},
		{"IPv4 dr real of an IPv6 service", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: \"2001:2::1\", port: 80, scheduler: rr, reals: [{address: 198.18.0.11}]}]\n", []string{"services[0]", "service TCP [2001:2::1]:80", "real server 198.18.0.11:80", "only for tunnel (-i)"}},
		{"IPv6 prefix length 129", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: \"2001:2::1\", port: 80, scheduler: rr, persistent: 60, netmask: \"129\"}]\n", []string{"services[0].netmask", `"129"`, "prefix length 1..128"}},
		{"IPv6 sorry server of an IPv4 service", "a.yaml", "interfaces: [eth0]\nhealth: {interval: 2s}\n" + svc("    reals: [{address: 198.18.0.11}]\n    sorry: {address: \"2001:2::99\"}\n")[len("interfaces: [eth0]\n"):], []string{"services[0].sorry", "[2001:2::99]:80", "only for tunnel (-i)"}},
		{"IPv6 mark groups overlap", "a.yaml", "interfaces: [eth0]\nmarks: [{mark: 1, matches: [{proto: udp, address: \"2001:2::1\", ports: \"5000-5100\"}]}, {mark: 2, matches: [{proto: udp, address: \"2001:2::1\"}]}]\n", []string{"marks[0].matches[0] (mark 1)", "marks[1].matches[0] (mark 2)", "udp 2001:2::1 port 5000"}},
		{"bad real address", "a.yaml", svc("    reals: [{address: 198.18.0.x}]\n"), []string{"services[0].reals[0].address", "198.18.0.x", "not an IP address"}},
		{"weight too big", "a.yaml", svc("    reals: [{address: 198.18.0.11, weight: 70000}]\n"), []string{"services[0].reals[0].weight", "70000", "0..65535"}},
		{"weight negative", "a.json", `{"interfaces":["eth0"],"services":[{"proto":"tcp","address":"198.19.0.1","port":80,"scheduler":"rr","reals":[{"address":"198.18.0.11","weight":-1}]}]}`, []string{"services[0].reals[0].weight", "-1", "0..65535"}},
		{"bad scheduler", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: fastest}]\n", []string{"services[0].scheduler", "fastest", "must be one of"}},
		{"bad netmask", "a.yaml", svc("    persistent: 60\n    netmask: 255.0.255.0\n"), []string{"services[0].netmask", "255.0.255.0", "contiguous"}},
		{"netmask not an address", "a.yaml", svc("    persistent: 60\n    netmask: /24\n"), []string{"services[0].netmask", "/24", "IPv4 netmask"}},
		{"duplicate service", "a.yaml", svc("  - {proto: tcp, address: 198.19.0.1, port: 80, scheduler: wlc}\n"), []string{"services[1]", "198.19.0.1:80", "already exists"}},
		{"duplicate real", "a.yaml", svc("    reals: [{address: 198.18.0.11}, {address: 198.18.0.11, port: 80}]\n"), []string{"services[0].reals[1]", "198.18.0.11:80", "already exists"}},
		{"bad duration", "a.yaml", "interfaces: [eth0]\ntimeouts: {tcp: 15 minutes}\n", []string{"timeouts.tcp: \"15 minutes\"", "duration"}},
		{"duration too small", "a.yaml", "interfaces: [eth0]\ntimeouts: {udp: 10ms}\n", []string{"timeouts.udp", "10ms", "at least 1s"}},
		{"conn_reuse_mode out of range", "a.yaml", "interfaces: [eth0]\nipvs: {conn_reuse_mode: 4}\n", []string{"ipvs.conn_reuse_mode", "4", "0..3"}},
		{"expire_nodest_conn not 0/1", "a.yaml", "interfaces: [eth0]\nipvs: {expire_nodest_conn: 2}\n", []string{"ipvs.expire_nodest_conn", "2", "0 or 1"}},
		{"expire_quiescent_template not 0/1", "a.yaml", "interfaces: [eth0]\nipvs: {expire_quiescent_template: -1}\n", []string{"ipvs.expire_quiescent_template", "-1", "0 or 1"}},
		{"sloppy_tcp not 0/1", "a.yaml", "interfaces: [eth0]\nipvs: {sloppy_tcp: 2}\n", []string{"ipvs.sloppy_tcp", "2", "0 or 1"}},
		{"vip_macs for another interface", "a.yaml", "interfaces: [eth0]\nvip_macs: {eth1: \"00:00:5e:00:01:33\"}\n", []string{"vip_macs.eth1", "not one of interfaces"}},
		{"vip_macs not a MAC", "a.yaml", "interfaces: [eth0]\nvip_macs: {eth0: 00-00-5e}\n", []string{"vip_macs.eth0", "00-00-5e", "Ethernet MAC"}},
		{"vip_macs multicast", "a.yaml", "interfaces: [eth0]\nvip_macs: {eth0: \"01:00:5e:00:00:01\"}\n", []string{"vip_macs.eth0", "01:00:5e:00:00:01", "unicast"}},
		{"vip_macs zero", "a.yaml", "interfaces: [eth0]\nvip_macs: {eth0: \"00:00:00:00:00:00\"}\n", []string{"vip_macs.eth0", "all zeros"}},
		{"vip_macs eui-64", "a.yaml", "interfaces: [eth0]\nvip_macs: {eth0: \"02:00:00:00:00:00:00:01\"}\n", []string{"vip_macs.eth0", "Ethernet MAC"}},
		{"drop_entry out of range", "a.yaml", "interfaces: [eth0]\nipvs: {drop_entry: 4}\n", []string{"ipvs.drop_entry", "4", "0 to 3"}},
		{"amemthresh negative", "a.yaml", "interfaces: [eth0]\nipvs: {amemthresh: -1}\n", []string{"ipvs.amemthresh", "-1"}},
		{"syn rate negative", "a.yaml", "interfaces: [eth0]\ndefense: {syn_rate_per_source: -10}\n", []string{"defense.syn_rate_per_source", "-10"}},
		{"syn burst not a number", "a.yaml", "interfaces: [eth0]\ndefense: {burst: lots}\n", []string{"defense.burst", "lots"}},
		{"service syn_rate negative", "a.yaml", svc("    syn_rate: -1\n"), []string{"services[0].syn_rate", "-1"}},
		{"unknown defense key", "a.yaml", "interfaces: [eth0]\ndefense: {syn_rate: 10}\n", []string{"defense.syn_rate: unknown key"}},
		{"syn_proxy not a boolean", "a.yaml", "interfaces: [eth0]\ndefense: {syn_proxy: 5}\n", []string{"defense.syn_proxy", "boolean"}},
		{"syn_proxy on a DR service", "a.yaml", svc("    syn_proxy: true\n    reals: [{address: 198.18.0.11}]\n"),
			[]string{"services[0].syn_proxy", "198.18.0.11:80", "Route", "nat"}},
		{"unknown ipvs key", "a.yaml", "interfaces: [eth0]\nipvs: {conn_reuse: 1}\n", []string{"ipvs.conn_reuse: unknown key"}},
		{"bad health duration", "a.toml", "interfaces = [\"eth0\"]\n[health]\ninterval = \"soon\"\n", []string{"health.interval", "soon", "duration"}},
		{"bad protocol", "a.yaml", "interfaces: [eth0]\nservices: [{proto: sctp, address: 198.19.0.1, port: 80}]\n", []string{"services[0].proto", "sctp", "tcp or udp"}},
		{"bad port", "a.json", `{"interfaces":["eth0"],"services":[{"proto":"tcp","address":"198.19.0.1","port":70000}]}`, []string{"services[0].port", "70000", "0..65535"}},
		{"nat without its index", "a.yaml", strings.Replace(svc("    forward: nat\n    reals: [{address: 198.18.2.11, port: 8080}]\n"), "interfaces: [eth0]\n", "interfaces: [eth0]\ntable: {nat: false}\n", 1),
			[]string{"services[0]", "198.18.2.11:8080", "forward nat needs table.nat: true"}},
		{"dr real on another port", "a.yaml", svc("    reals: [{address: 198.18.0.11, port: 8080}]\n"), []string{"services[0].reals[0].port", "8080", "only a nat real server"}},
		{"bad forward", "a.yaml", svc("    forward: carrier-pigeon\n"), []string{"services[0].forward", "carrier-pigeon", "dr, tun"}},
		{"bad metrics address", "a.yaml", "interfaces: [eth0]\nmetrics: {address: localhost}\n", []string{"metrics.address", "localhost", "ip:port"}},
		{"relative socket", "a.yaml", "interfaces: [eth0]\ncontrol: {socket: afvs.sock}\n", []string{"control.socket", "afvs.sock", "absolute"}},
		{"capacity too big", "a.yaml", "interfaces: [eth0]\ntable: {capacity: 1000000000}\n", []string{"table.capacity", "1000000000", "must be 1.."}},
		{"bad xdp mode", "a.yaml", "interfaces: [eth0]\nxdp_mode: turbo\n", []string{"xdp_mode", "turbo", "auto, native or generic"}},
		{"bad interface", "a.yaml", "interfaces: [\"eth0/1\"]\n", []string{"interfaces[0]", "eth0/1", "interface name"}},
		{"fwmark without group", "a.yaml", "interfaces: [eth0]\nservices: [{fwmark: 9, scheduler: rr}]\n", []string{"services[0].fwmark", "9", "marks"}},
		{"bad mark ports", "a.yaml", "interfaces: [eth0]\nmarks: [{mark: 1, matches: [{proto: tcp, address: 198.19.0.1, ports: 90-80}]}]\n", []string{"marks[0].matches[0].ports", "90-80", "range"}},
		{"bad sched flag", "a.yaml", svc("    sched_flags: [sh-port]\n"), []string{"services[0]", "sh-port"}},
		{"not YAML", "a.yaml", "interfaces: [eth0\n", []string{"a.yaml"}},
		{"wrong type", "a.yaml", "interfaces: [eth0]\nframes: many\n", []string{"frames: \"many\"", "integer"}},
		{"unknown extension", "a.ini", "interfaces=eth0\n", []string{"a.ini", "extension"}},
		{"bad poll mode", "a.yaml", "interfaces: [eth0]\npoll: {mode: turbo}\n", []string{"poll.mode", "turbo", "adaptive", "busy", "sleep"}},
		{"bad poll spin", "a.yaml", "interfaces: [eth0]\npoll: {mode: adaptive, spin: 5s}\n", []string{"poll.spin", "5s", "0 to 1s"}},
		{"unknown poll key", "a.yaml", "interfaces: [eth0]\npoll: {mode: busy, budget: 64}\n", []string{"poll.budget: unknown key"}},
		{"bad on_failure", "a.yaml", "interfaces: [eth0]\nhealth: {interval: 2s, on_failure: delete}\n", []string{"health.on_failure", "delete", "quiesce", "remove"}},
		// What `afvs run` refuses before it touches the network.
		{"no interfaces", "a.yaml", "interfaces: []\nservices: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: rr}]\n", []string{"interfaces", "at least one interface"}},
		{"no interfaces key", "a.yaml", "services: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: rr}]\n", []string{"interfaces", "at least one interface"}},
		{"too many steering keys", "a.yaml", "interfaces: [eth0]\nmarks: [{mark: 1, matches: [{proto: tcp, address: 198.19.0.1, ports: 1-5000}]}]\nservices: [{fwmark: 1, scheduler: rr}]\n", []string{"5000", "steering map holds 4096"}},
		{"sync interface missing", "a.yaml", "interfaces: [eth0]\nsync: {backup: {interface: nosuchdev0}}\n", []string{"sync.backup", `mcast-interface "nosuchdev0": no such device`}},
		{"sync group not multicast", "a.yaml", "interfaces: [eth0]\nsync: {master: {interface: lo, group: 198.18.0.1}}\n", []string{"sync.master.group", "198.18.0.1", "multicast"}},
		{"sync group interface-local", "a.yaml", "interfaces: [eth0]\nsync: {backup: {interface: lo, group: \"ff01::51\"}}\n", []string{"sync.backup.group", "ff01::51", "scope 1"}},
		{"sync_threshold reversed", "a.yaml", "interfaces: [eth0]\nipvs: {sync_threshold: [50, 3]}\n", []string{"ipvs.sync_threshold", "[50 3]"}},
		{"overlapping marks", "a.yaml", "interfaces: [eth0]\nmarks: [{mark: 1, matches: [{proto: tcp, address: 198.19.0.1, ports: 80-90}]}, {mark: 2, matches: [{proto: tcp, address: 198.19.0.1, ports: \"90\"}]}]\n", []string{"mark 1", "mark 2", "overlap", "port 90"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRefuses(t, tc.file, tc.text, tc.want) })
	}
}

func TestCheckNeedsConfig(t *testing.T) {
	if err := runCheck(nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("check without --config: %v", err)
	}
	if err := runCheck([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("check of a missing file: %v", err)
	}
}

// TestCheckRefusesWhatRunRefuses: configs that `afvs run` refuses before
// it opens anything are refused by `afvs check` with the same error (the
// interface named here does not exist, so a run that got further would
// fail on it instead, touching nothing).
func TestCheckRefusesWhatRunRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"no interfaces": {"interfaces: []\nservices: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: rr}]\n", "at least one interface"},
		"steering keys": {"interfaces: [afvsnone0]\ncontrol: {socket: \"\"}\nmetrics: {address: \"\"}\nmarks: [{mark: 1, matches: [{proto: udp, address: 198.19.0.1, ports: 1-4097}]}]\nservices: [{fwmark: 1, scheduler: rr}]\n", "steering map holds 4096"},
		"overlap":       {"interfaces: [afvsnone0]\ncontrol: {socket: \"\"}\nmetrics: {address: \"\"}\nmarks: [{mark: 1, matches: [{proto: tcp, address: 198.19.0.1}]}, {mark: 2, matches: [{proto: tcp, address: 198.19.0.1, ports: \"443\"}]}]\n", "overlap at tcp 198.19.0.1 port 443"},
		"sched flags":   {"interfaces: [afvsnone0]\ncontrol: {socket: \"\"}\nmetrics: {address: \"\"}\nservices: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: mh, sched_flags: [sh-port]}]\n", "sh-port"},
	} {
		t.Run(name, func(t *testing.T) {
			f := writeConfig(t, "a.yaml", tc.text)
			runErr := runDaemon([]string{"--config", f})
			checkErr := runCheck([]string{"--config", f})
			if runErr == nil || checkErr == nil {
				t.Fatalf("run: %v; check: %v", runErr, checkErr)
			}
			if !strings.Contains(checkErr.Error(), runErr.Error()) || !strings.Contains(runErr.Error(), tc.want) {
				t.Fatalf("check says %q, run says %q; want both to say %q", checkErr, runErr, tc.want)
			}
		})
	}
}

// checkRefuses runs afvs check on text, written to a file named file, and
// requires a one-line error that mentions every string in want.
func checkRefuses(t *testing.T, file, text string, want []string) {
	t.Helper()
	err := runCheck([]string{"--config", writeConfig(t, file, text)})
	if err == nil {
		t.Fatalf("accepted:\n%s", text)
	}
	t.Log(err)
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}
