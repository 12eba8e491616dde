package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

func base() Config {
	c := Config{Interfaces: []string{"eth0"}, XDPMode: "auto", Frames: 4096, Table: TableConfig{Capacity: 1024, Templates: 64},
		ICMP: ICMPConfig{Rate: 1000, Burst: 50, HostInterval: time.Second, HostBurst: 6}, Poll: PollConfig{Mode: "adaptive", Spin: 50 * time.Microsecond}, Metrics: MetricsConfig{Address: "127.0.0.1:9469"}, Control: ControlConfig{Socket: "/run/afvs/afvs.sock"}, Log: LogConfig{Level: "info"}}
	w := 2
	c.Services = []ServiceConfig{{Proto: "tcp", Address: "198.19.0.1", Port: 80, Scheduler: "wlc",
		Reals: []RealConfig{{Address: "198.18.0.11", Weight: &w}, {Address: "198.18.0.12", Forward: "tun"}}}}
	return c
}

func TestValidConfigConverts(t *testing.T) {
	c := base()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	tbl, err := c.VS()
	if err != nil {
		t.Fatal(err)
	}
	s := tbl.Services[0]
	if s.Reals[0].Weight != 2 || s.Reals[1].Weight != 1 || s.Reals[1].Fwd.String() != "Tunnel" || s.Reals[0].Port != 80 {
		t.Fatalf("reals %+v: weight default 1, port defaults to the service's", s.Reals)
	}
}

// TestNATTwoInterfaces: VS/NAT real servers are accepted with two
// receiving interfaces (the LVS manual's NAT layout) and refused only
// without the reply index, naming the server and the key.
func TestNATTwoInterfaces(t *testing.T) {
	c := base()
	c.Interfaces = []string{"eth0", "eth1"}
	c.Table.NAT = true
	c.Services[0].Reals = []RealConfig{{Address: "198.18.2.11", Port: 8080, Forward: "nat"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("two interfaces and a NAT real server: %v", err)
	}
	c.Table.NAT = false
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "198.18.2.11:8080") || !strings.Contains(err.Error(), "table.nat: true") {
		t.Fatalf("NAT without the reply index: %v", err)
	}
}

func TestErrorsNameKeyValueAndRule(t *testing.T) {
	bad := -3
	cases := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"weight", func(c *Config) { c.Services[0].Reals[0].Weight = &bad }, []string{"services[0].reals[0].weight", "-3", "0..65535"}},
		{"address", func(c *Config) { c.Services[0].Address = "198.19.0" }, []string{"services[0].address", "198.19.0", "not an IP"}},
		{"proto", func(c *Config) { c.Services[0].Proto = "sctp" }, []string{"services[0].proto", "sctp", "tcp or udp"}},
		{"forward", func(c *Config) { c.Services[0].Reals[1].Forward = "gre" }, []string{"services[0].reals[1].forward", "gre"}},
		{"netmask", func(c *Config) { c.Services[0].Netmask = "255.0.255.0" }, []string{"services[0].netmask", "contiguous"}},
		{"xdp mode", func(c *Config) { c.XDPMode = "fast" }, []string{"xdp_mode", "fast", "auto, native or generic"}},
		{"frames", func(c *Config) { c.Frames = 1000 }, []string{"frames", "1000", "power of two"}},
		{"capacity", func(c *Config) { c.Table.Capacity = 0 }, []string{"table.capacity", "0"}},
		{"timeout", func(c *Config) { c.Timeouts.TCP = time.Millisecond }, []string{"timeouts.tcp", "1ms", "at least 1s"}},
		{"cpus", func(c *Config) { c.CPUs = map[string]int{"eth0": 1} }, []string{"cpus.eth0", "interface:queue"}},
		{"metrics", func(c *Config) { c.Metrics.Address = "localhost" }, []string{"metrics.address", "localhost"}},
		{"socket", func(c *Config) { c.Control.Socket = "afvs.sock" }, []string{"control.socket", "absolute"}},
		{"health", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 1}
		}, []string{"health.timeout", "2s"}},
		{"interface", func(c *Config) { c.Interfaces = []string{"a/b"} }, []string{"interfaces[0]", "a/b"}},
		{"exec check", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "exec", Command: []string{"check.sh"}}
		}, []string{"health.command", "check.sh", "absolute path"}},
		{"exec check without command", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "exec"}
		}, []string{"health.command", "absolute path"}},
		{"service check type", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Health = &ServiceHealth{Type: "ldap"}
		}, []string{"services[0].health.type", "ldap", "tcp, udp, http, https, dns, smtp or exec"}},
		{"service check port", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Health = &ServiceHealth{Type: "tcp", Port: 70000}
		}, []string{"services[0].health.port", "70000", "0..65535"}},
		{"service check without checks on", func(c *Config) { c.Services[0].Health = &ServiceHealth{Type: "tcp"} }, []string{"services[0].health", "health.interval"}},
		{"sorry without checks", func(c *Config) { c.Services[0].Sorry = &RealConfig{Address: "198.18.0.99"} }, []string{"services[0].sorry", "health.interval"}},
		{"sorry address", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Sorry = &RealConfig{Address: "198.18.0"}
		}, []string{"services[0].sorry.address", "198.18.0"}},
		{"sorry is a real", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Sorry = &RealConfig{Address: "198.18.0.11"}
		}, []string{"services[0].sorry", "198.18.0.11:80", "one of the service's real servers"}},
		// A sorry server joins its service as a real server: the family
		// and port rules of real servers hold for it.
		{"sorry of the other family", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Sorry = &RealConfig{Address: "2001:2::99"}
		}, []string{"services[0].sorry", "[2001:2::99]:80", "family differs", "only for tunnel (-i)"}},
		{"sorry of the other family in an IPv6 service", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "2001:2::11"}}
			c.Services[0].Sorry = &RealConfig{Address: "198.18.0.99", Forward: "nat"}
		}, []string{"services[0].sorry", "198.18.0.99:80", "family differs", "only for tunnel (-i)"}},
		{"sorry port with dr", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Sorry = &RealConfig{Address: "198.18.0.99", Port: 8080}
		}, []string{"services[0].sorry.port", "8080", "only a nat real server's port"}},
		// IPv6 services: every bad value is named with its rule.
		{"IPv4 dr real in an IPv6 service", func(c *Config) { c.Services[0].Address = "2001:2::1" },
			[]string{"services[0]", "service TCP [2001:2::1]:80", "real server 198.18.0.11:80", "family differs", "only for tunnel (-i)"}},
		{"IPv4 nat real in an IPv6 service", func(c *Config) {
			c.Table.NAT = true
			c.Services[0].Address = "2001:2::1"
			c.Services[0].Reals = []RealConfig{{Address: "198.18.0.11", Port: 8080, Forward: "nat"}}
		}, []string{"services[0]", "real server 198.18.0.11:8080", "family differs", "only for tunnel (-i)"}},
		{"IPv6 prefix length 129", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals, c.Services[0].Persistent, c.Services[0].Netmask = "2001:2::1", nil, 60, "129"
		}, []string{"services[0].netmask", `"129"`, "prefix length 1..128"}},
		{"IPv6 prefix length 0", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals, c.Services[0].Persistent, c.Services[0].Netmask = "2001:2::1", nil, 60, "0"
		}, []string{"services[0].netmask", `"0"`, "prefix length 1..128"}},
		{"IPv6 mask written as an address", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals, c.Services[0].Persistent, c.Services[0].Netmask = "2001:2::1", nil, 60, "ffff:ffff:ffff:ffff::"
		}, []string{"services[0].netmask", "ffff:ffff:ffff:ffff::", "prefix length 1..128, such as 64"}},
		{"IPv6 fwmark service with an IPv4 mask", func(c *Config) {
			c.Marks = []MarkConfig{{Mark: 1, Matches: []MatchConfig{{Proto: "tcp", Address: "2001:2::1", Ports: "80"}}}}
			c.Services = []ServiceConfig{{FWMark: 1, IPv6: true, Scheduler: "rr", Persistent: 60, Netmask: "255.255.255.0"}}
		}, []string{"services[0].netmask", "255.255.255.0", "prefix length"}},
		{"IPv4 fwmark service with a prefix length", func(c *Config) {
			c.Marks = []MarkConfig{{Mark: 1, Matches: []MatchConfig{{Proto: "tcp", Address: "198.19.0.1", Ports: "80"}}}}
			c.Services = []ServiceConfig{{FWMark: 1, Scheduler: "rr", Persistent: 60, Netmask: "64"}}
		}, []string{"services[0].netmask", `"64"`, "IPv4 netmask"}},
		{"IPv6 real with a zone", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "fe80::11%eth0"}}
		}, []string{"services[0].reals[0].address", "fe80::11%eth0", "no zone"}},
		{"IPv4-mapped IPv6 real", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "::ffff:198.18.0.11"}}
		}, []string{"services[0].reals[0].address", "::ffff:198.18.0.11", "IPv4-mapped"}},
		{"IPv6 real port with dr", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "2001:2::11", Port: 8080}}
		}, []string{"services[0].reals[0].port", "8080", "only a nat real server's port"}},
		{"IPv6 duplicate real in another spelling", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "2001:2::11"}, {Address: "2001:2:0:0:0:0:0:11"}}
		}, []string{"services[0].reals[1]", "[2001:2::11]:80", "already exists", "services[0].reals[0]"}},
		{"IPv6 mark groups overlap", func(c *Config) {
			c.Marks = []MarkConfig{{Mark: 1, Matches: []MatchConfig{{Proto: "tcp", Address: "2001:2::1", Ports: "80-90"}}},
				{Mark: 2, Matches: []MatchConfig{{Proto: "tcp", Address: "2001:2:0::1", Ports: "85"}}}}
			c.Services = []ServiceConfig{{FWMark: 1, IPv6: true, Scheduler: "rr"}}
		}, []string{"marks[0].matches[0] (mark 1)", "marks[1].matches[0] (mark 2)", "2001:2::1 port 85"}},
		{"link-local IPv6 real", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "fe80::11"}}
		}, []string{"services[0].reals[0]", "[fe80::11]:80", "link-local"}},
		{"multicast IPv6 real", func(c *Config) {
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "ff02::1"}}
		}, []string{"services[0].reals[0]", "[ff02::1]:80", "multicast", "unicast"}},
		{"multicast IPv4 real", func(c *Config) { c.Services[0].Reals[0].Address = "224.0.0.5" },
			[]string{"services[0].reals[0]", "224.0.0.5:80", "multicast", "unicast"}},
		{"IPv6 service check port", func(c *Config) {
			c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
			c.Services[0].Address, c.Services[0].Reals = "2001:2::1", []RealConfig{{Address: "2001:2::11"}}
			c.Services[0].Health = &ServiceHealth{Type: "http", Path: "healthz"}
		}, []string{"services[0].health.path", "healthz"}},
		{"icmp rate", func(c *Config) { c.ICMP.Rate = 0 }, []string{"icmp.rate", "0", "1..1000000"}},
		{"icmp host interval", func(c *Config) { c.ICMP.HostInterval = -time.Second }, []string{"icmp.host_interval", "-1s", "0 (off) to 1h"}},
		{"icmp burst", func(c *Config) { c.ICMP.Burst = -1 }, []string{"icmp.burst", "-1", "1..1000000"}},
		{"poll mode", func(c *Config) { c.Poll.Mode = "spin" }, []string{"poll.mode", `"spin"`, "adaptive", "busy", "sleep"}},
		{"poll mode empty", func(c *Config) { c.Poll.Mode = "" }, []string{"poll.mode", `""`}},
		{"poll spin negative", func(c *Config) { c.Poll.Spin = -time.Microsecond }, []string{"poll.spin", "-1µs", "0 to 1s"}},
		{"poll spin too long", func(c *Config) { c.Poll.Spin = 2 * time.Second }, []string{"poll.spin", "2s", "0 to 1s"}},
		{"drop_entry", func(c *Config) { c.IPVS.DropEntry = 4 }, []string{"ipvs.drop_entry", "4", "0 to 3"}},
		{"secure_tcp", func(c *Config) { c.IPVS.SecureTCP = -1 }, []string{"ipvs.secure_tcp", "-1", "0 to 3"}},
		{"amemthresh", func(c *Config) { c.IPVS.AmemThresh = -2 }, []string{"ipvs.amemthresh", "-2"}},
		{"syn rate", func(c *Config) { c.Defense.SYNRatePerSource = -1 }, []string{"defense.syn_rate_per_source", "-1"}},
		{"syn burst", func(c *Config) { c.Defense.Burst = 2_000_000 }, []string{"defense.burst", "2000000"}},
		{"rings.rx", func(c *Config) { c.Rings.RX = 3000 }, []string{"rings.rx", "3000", "power of two"}},
		{"rings.fill", func(c *Config) { c.Rings.Fill = 8192 }, []string{"rings.fill", "8192", "frames (4096)"}},
		{"service syn_rate", func(c *Config) { c.Services[0].SYNRate = -4 }, []string{"services[0].syn_rate", "-4"}},
		{"block_for", func(c *Config) { c.Defense.BlockFor = 25 * time.Hour }, []string{"defense.block_for", "25h0m0s", "24h"}},
		{"block_prefix6 negative", func(c *Config) { c.Defense.BlockPrefix6 = -1 }, []string{"defense.block_prefix6", "-1", "1 to 128"}},
		{"block_prefix6 129", func(c *Config) { c.Defense.BlockPrefix6 = 129 }, []string{"defense.block_prefix6", "129", "1 to 128"}},
		{"syn_proxy on a DR service", func(c *Config) { on := true; c.Services[0].SYNProxy = &on },
			[]string{"services[0].syn_proxy", "198.18.0.11:80", "Route", "nat"}},
		{"syn_proxy on a UDP service", func(c *Config) {
			on := true
			c.Services[0].Proto, c.Services[0].SYNProxy, c.Services[0].Forward = "udp", &on, "nat"
			c.Services[0].Reals[1].Forward = ""
			c.Table.NAT = true
		}, []string{"services[0].syn_proxy", "needs a TCP service", "UDP 198.19.0.1:80"}},
		{"syn_proxy on an IPv6 DR service", func(c *Config) {
			on := true
			c.Services[0].Address, c.Services[0].SYNProxy = "2001:2:0:1::8", &on
			c.Services[0].Reals = []RealConfig{{Address: "2001:2::11"}}
		}, []string{"services[0].syn_proxy", "[2001:2::11]:80", "Route", "nat"}},
		{"syn_proxy on an IPv6 UDP service", func(c *Config) {
			on := true
			c.Services[0].Proto, c.Services[0].Address, c.Services[0].SYNProxy, c.Services[0].Forward = "udp", "2001:2:0:1::8", &on, "nat"
			c.Services[0].Reals = []RealConfig{{Address: "2001:2::11", Port: 5353}}
			c.Table.NAT = true
		}, []string{"services[0].syn_proxy", "needs a TCP service", "UDP [2001:2:0:1::8]:80"}},
	}
	for _, tc := range cases {
		c := base()
		tc.edit(&c)
		err := c.Validate()
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
}

// TestIPv6ConfigConverts: the config describes IPv6 services as IPVS
// models them: IPv6 reals, a mixed-family tunnel real, -M as a prefix
// length, and a firewall-mark service of the IPv6 family.
func TestIPv6ConfigConverts(t *testing.T) {
	c := base()
	c.Services = append(c.Services,
		ServiceConfig{Proto: "tcp", Address: "2001:2::1", Port: 443, Scheduler: "mh", Persistent: 300, Netmask: "64",
			Reals: []RealConfig{{Address: "2001:2::11"}, {Address: "198.18.0.21", Forward: "tun"}}},
		ServiceConfig{FWMark: 5, IPv6: true, Scheduler: "rr"})
	c.Marks = []MarkConfig{{Mark: 5, Matches: []MatchConfig{{Proto: "tcp", Address: "2001:2::5", Ports: "80"}}}}
	tbl, err := c.VS()
	if err != nil {
		t.Fatal(err)
	}
	s := tbl.Services[1]
	if s.Addr.String() != "2001:2::1" || s.Netmask.String() != "ffff:ffff:ffff:ffff::" || len(s.Reals) != 2 ||
		s.Reals[0].Addr.String() != "2001:2::11" || s.Reals[0].Port != 443 || s.Reals[1].Fwd.String() != "Tunnel" {
		t.Errorf("IPv6 service %+v", s)
	}
	if f := tbl.Services[2]; f.FWMark != 5 || !f.IPv6 || f.Key.String() != "FWM 5 IPv6" || f.Netmask.String() != "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" {
		t.Errorf("IPv6 fwmark service %+v", f)
	}
	if m := tbl.Marks[0].Matches[0]; m.Addr.String() != "2001:2::5" {
		t.Errorf("IPv6 mark match %+v", m)
	}
}

func TestDefenseConverts(t *testing.T) {
	c := base()
	c.IPVS = IPVSConfig{ConnReuseMode: 1, DropEntry: 1, DropPacket: 2, SecureTCP: 3, AmemThresh: 500, AmDropRate: 7}
	c.Defense = DefenseConfig{SYNRatePerSource: 20, SYNRatePerService: 1000, Burst: 40, BlockFactor: 10}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := c.IPVSDefense(); d.DropEntry != 1 || d.DropPacket != 2 || d.SecureTCP != 3 || d.AmemThresh != 500 || d.AmDropRate != 7 {
		t.Fatalf("ipvs defence %+v", d)
	}
	c.Services[0].SYNRate = 300
	if m, err := c.SYNServiceRates(); err != nil || len(m) != 1 || m[vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}] != 300 {
		t.Fatalf("service SYN rates %v, %v", m, err)
	}
	if l := c.SYNLimits(); l.PerSource != 20 || l.PerService != 1000 || l.Burst != 40 || l.BlockFactor != 10 {
		t.Fatalf("SYN limits %+v", l)
	}
}

// TestSorryServerForwardable: the dataplane gets a sorry server only when
// the checks find every real server of its service down, so the
// configuration is where one is refused; a sorry server of the other
// family behind a tunnel (a mixed-family -i dest) and an IPv6 nat sorry
// server of an IPv6 service are forwarded, so accepted.
func TestSorryServerForwardable(t *testing.T) {
	c := base()
	c.Health = HealthConfig{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Type: "tcp"}
	c.Services[0].Sorry = &RealConfig{Address: "2001:2::99", Forward: "tun"}
	tbl, err := c.VS()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dataplane.Build(tbl, dataplane.BuildOptions{Registry: dataplane.NewRegistry(), Loads: sched.NewLoads(dataplane.MaxDests)}); err != nil {
		t.Fatalf("the dataplane refuses the table: %v", err)
	}
	m, err := c.SorryServers()
	if err != nil || m[tbl.Services[0].Key].Addr != netip.MustParseAddr("2001:2::99") {
		t.Fatalf("sorry servers %v, %v: want the IPv6 tunnel one", m, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Services = append(c.Services, ServiceConfig{Proto: "tcp", Address: "2001:2::1", Port: 80, Forward: "nat",
		Reals: []RealConfig{{Address: "2001:2::11", Port: 8080}}, Sorry: &RealConfig{Address: "2001:2::98", Port: 8081}})
	c.Table.NAT = true
	m, err = c.SorryServers()
	if err != nil || m[vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 80}].Port != 8081 {
		t.Fatalf("sorry servers %v, %v: want the IPv6 nat one on 8081", m, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSYNProxyConverts: defense.syn_proxy and a service's own syn_proxy
// reach the dataplane's settings; off is accepted on any service.
func TestSYNProxyConverts(t *testing.T) {
	c := base()
	c.Defense.SYNProxy = true
	c.Table.NAT = true
	off, on := false, true
	c.Services[0].SYNProxy = &off
	c.Services = append(c.Services, ServiceConfig{Proto: "tcp", Address: "198.19.0.2", Port: 80, Forward: "nat", SYNProxy: &on,
		Reals: []RealConfig{{Address: "198.18.2.11", Port: 8080}}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := c.SYNProxyServices()
	k0 := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}
	k1 := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.2"), Port: 80}
	if err != nil || len(m) != 2 || m[k0] || !m[k1] {
		t.Fatalf("syn_proxy by service %v, %v", m, err)
	}
}

// TestSYNProxyIPv6Accepted: syn_proxy: true on an IPv6 TCP service whose
// real servers are all VS/NAT ones is accepted and reaches the
// dataplane's settings, as on an IPv4 one.
func TestSYNProxyIPv6Accepted(t *testing.T) {
	c := base()
	c.Table.NAT = true
	on := true
	c.Services = append(c.Services, ServiceConfig{Proto: "tcp", Address: "2001:2:0:1::8", Port: 80, Forward: "nat", SYNProxy: &on,
		Reals: []RealConfig{{Address: "2001:2::81", Port: 8080}, {Address: "2001:2::82", Port: 8080}}})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := c.SYNProxyServices()
	k := vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2:0:1::8"), Port: 80}
	if err != nil || len(m) != 1 || !m[k] {
		t.Fatalf("syn_proxy by service %v, %v", m, err)
	}
}
