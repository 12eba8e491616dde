package ipvsadm

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var (
	v4svc = Virtual{Proto: TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}
	v6svc = Virtual{Proto: TCP, Addr: netip.MustParseAddr("2001:2::10"), Port: 443}
)

// base returns a Command with Parse's defaults, for tests to adjust.
func base(k Kind) Command {
	return Command{Kind: k, Weight: 1, Fwd: Route, Netmask: 32}
}

func TestParse(t *testing.T) {
	svcCmd := func(k Kind, v Virtual, f func(*Command)) Command {
		c := base(k)
		c.HasService, c.Service, c.Netmask = true, v, v.bits()
		if k == AddService || k == EditService {
			c.Sched = "wlc"
		}
		if f != nil {
			f(&c)
		}
		return c
	}
	srv := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	tests := []struct {
		args string
		want Command
	}{
		{"", base(List)},
		{"-A -t 198.19.0.1:80", svcCmd(AddService, v4svc, nil)},
		{"--add-service --tcp-service 198.19.0.1:80 --scheduler rr", svcCmd(AddService, v4svc, func(c *Command) { c.Sched = "rr" })},
		{"-A -t 198.19.0.1:http -s wrr", svcCmd(AddService, v4svc, func(c *Command) { c.Sched = "wrr" })},
		{"-A -t198.19.0.1:80 -srr", svcCmd(AddService, v4svc, func(c *Command) { c.Sched = "rr" })},
		{"-At 198.19.0.1:80", svcCmd(AddService, v4svc, nil)},
		{"-A --tcp-service=198.19.0.1:80 --scheduler=sh -b sh-port,sh-fallback,sh-port",
			svcCmd(AddService, v4svc, func(c *Command) { c.Sched = "sh"; c.SchedFlags = []string{"sh-fallback", "sh-port"} })},
		{"-A -t 198.19.0.1:80 -b flag-2", svcCmd(AddService, v4svc, func(c *Command) { c.SchedFlags = []string{"flag-2"} })},
		{"-A -t 198.19.0.1:80 -p", svcCmd(AddService, v4svc, func(c *Command) { c.Persistent, c.Timeout = true, 360 })},
		{"-A -t 198.19.0.1:80 -p -M 255.255.255.0", svcCmd(AddService, v4svc, func(c *Command) { c.Persistent, c.Timeout, c.Netmask = true, 360, 24 })},
		{"-A -t 198.19.0.1:80 -p 600 -s lc", svcCmd(AddService, v4svc, func(c *Command) { c.Persistent, c.Timeout, c.Sched = true, 600, "lc" })},
		{"-A -t 198.19.0.1:80 -p600", svcCmd(AddService, v4svc, func(c *Command) { c.Persistent, c.Timeout = true, 600 })},
		{"-A -t 198.19.0.1:80 --persistent=60", svcCmd(AddService, v4svc, func(c *Command) { c.Persistent, c.Timeout = true, 60 })},
		{"-A -t 198.19.0.1 -p", svcCmd(AddService, Virtual{Proto: TCP, Addr: netip.MustParseAddr("198.19.0.1")},
			func(c *Command) { c.Persistent, c.Timeout = true, 360 })},
		{"-E -t [2001:2::10]:443 -s mh -p 30 -M 64", svcCmd(EditService, v6svc, func(c *Command) { c.Sched, c.Persistent, c.Timeout, c.Netmask = "mh", true, 30, 64 })},
		{"-A -u 198.19.0.1:80 -o", svcCmd(AddService, Virtual{Proto: UDP, Addr: v4svc.Addr, Port: 80}, func(c *Command) { c.OnePacket = true })},
		{"-A -f 7", svcCmd(AddService, Virtual{Proto: FWM, FWMark: 7}, nil)},
		{"-A -f 7 -6 -p -M 48", svcCmd(AddService, Virtual{Proto: FWM, FWMark: 7, IPv6: true},
			func(c *Command) { c.Persistent, c.Timeout, c.Netmask = true, 360, 48 })},
		{"-A --fwmark-service 4294967295 --ipv6", svcCmd(AddService, Virtual{Proto: FWM, FWMark: 1<<32 - 1, IPv6: true}, nil)},
		{"-A -t 2001:2::10 -p", svcCmd(AddService, Virtual{Proto: TCP, Addr: v6svc.Addr}, func(c *Command) { c.Persistent, c.Timeout = true, 360 })},
		{"-D -t 198.19.0.1:80", svcCmd(DeleteService, v4svc, nil)},
		{"--delete-service --udp-service 198.19.0.1:80", svcCmd(DeleteService, Virtual{Proto: UDP, Addr: v4svc.Addr, Port: 80}, nil)},
		{"-C", base(Clear)},
		{"--clear", base(Clear)},
		{"-R", base(Restore)},
		{"--restore", base(Restore)},
		{"-S", base(Save)},
		{"-S -n", func() Command { c := base(Save); c.List.Numeric = true; return c }()},
		{"-Sn", func() Command { c := base(Save); c.List.Numeric = true; return c }()},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2", svcCmd(AddServer, v4svc, func(c *Command) { c.Server = srv("198.18.1.2:80") })},
		// -g and -i cannot change the port, so the server port follows the service.
		{"-a -t 198.19.0.1:80 -r 198.18.1.2:8080 -g", svcCmd(AddServer, v4svc, func(c *Command) { c.Server = srv("198.18.1.2:80") })},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2:8080 -m -w 5", svcCmd(AddServer, v4svc, func(c *Command) {
			c.Server, c.Fwd, c.Weight = srv("198.18.1.2:8080"), Masq, 5
		})},
		{"-a -r 198.18.1.2 -t 198.19.0.1:80", svcCmd(AddServer, v4svc, func(c *Command) { c.Server = srv("198.18.1.2:80") })},
		{"--add-server --tcp-service 198.19.0.1:80 --real-server 198.18.1.2 --ipip --weight 0 --u-threshold 100 --l-threshold 50",
			svcCmd(AddServer, v4svc, func(c *Command) {
				c.Server, c.Fwd, c.Weight, c.Upper, c.Lower = srv("198.18.1.2:80"), Tunnel, 0, 100, 50
			})},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type gue --tun-port 6080 --tun-remcsum", svcCmd(AddServer, v4svc, func(c *Command) {
			c.Server, c.Fwd, c.Tunnel = srv("198.18.1.2:80"), Tunnel, TunnelInfo{Type: GUE, Port: 6080, Csum: RemCsum}
		})},
		{"-a -t [2001:2::10]:443 -r 198.18.1.2 -i", svcCmd(AddServer, v6svc, func(c *Command) { c.Server, c.Fwd = srv("198.18.1.2:443"), Tunnel })},
		{"-a -t [2001:2::10]:443 -r [2001:2::1:1]:443 -w 65535", svcCmd(AddServer, v6svc, func(c *Command) { c.Server, c.Weight = srv("[2001:2::1:1]:443"), 65535 })},
		{"-a -f 7 -r 198.18.1.2", svcCmd(AddServer, Virtual{Proto: FWM, FWMark: 7}, func(c *Command) { c.Server = srv("198.18.1.2:0") })},
		{"-e -t 198.19.0.1:80 -r 198.18.1.2 -w 3", svcCmd(EditServer, v4svc, func(c *Command) { c.Server, c.Weight = srv("198.18.1.2:80"), 3 })},
		{"-d -t 198.19.0.1:80 -r 198.18.1.2", svcCmd(DeleteServer, v4svc, func(c *Command) { c.Server = srv("198.18.1.2:80") })},
		{"--delete-server -t 198.19.0.1:80 -r 198.18.1.2:8080", svcCmd(DeleteServer, v4svc, func(c *Command) { c.Server = srv("198.18.1.2:8080") })},
		{"-L", base(List)},
		{"-l", base(List)},
		{"--list", base(List)},
		{"-Ln", func() Command { c := base(List); c.List.Numeric = true; return c }()},
		{"-Lnc", func() Command { c := base(List); c.List.Numeric, c.List.Connection = true, true; return c }()},
		{"-L -n --stats --exact --sort", func() Command {
			c := base(List)
			c.List.Numeric, c.List.Stats, c.List.Exact = true, true, true
			return c
		}()},
		{"-L --rate --nosort", func() Command { c := base(List); c.List.Rate, c.List.NoSort = true, true; return c }()},
		{"-L --thresholds --persistent-conn --tun-info", func() Command {
			c := base(List)
			c.List.Thresholds, c.List.PersistentConn, c.List.TunInfo = true, true, true
			return c
		}()},
		{"-L -c --persistent-conn", func() Command { c := base(List); c.List.Connection, c.List.PersistentConn = true, true; return c }()},
		{"-L --timeout", func() Command { c := base(List); c.List.Timeout = true; return c }()},
		{"-L -n -t 198.19.0.1:80", svcCmd(List, v4svc, func(c *Command) { c.List.Numeric = true })},
		{"-Z", base(Zero)},
		{"--zero -t 198.19.0.1:80", svcCmd(Zero, v4svc, nil)},
		{"--set 900 120 300", func() Command { c := base(SetTimeout); c.Timeouts = Timeouts{900, 120, 300}; return c }()},
		{"--set 0 0 2678400", func() Command { c := base(SetTimeout); c.Timeouts = Timeouts{0, 0, 2678400}; return c }()},
		{"-h", base(Help)},
		{"--help -t nonsense", base(Help)},
		{"-v", base(Version)},
		{"--version", base(Version)},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			got, err := Parse(strings.Fields(tt.args))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.args, *got, tt.want)
			}
		})
	}
}

// TestParseErrors checks that bad command lines fail with one line that
// names the bad value or the rule, in ipvsadm's words.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		args string
		want string // substring of the error
	}{
		{"-n", `-n given before any command`},
		{"-t 198.19.0.1:80 -A", `-t given before any command`},
		{"-A -D -t 198.19.0.1:80", "invalid option `-D': multiple commands specified: -A and -D"},
		{"-L -C", "multiple commands specified"},
		{"-A", "You need to supply the 'service-address' option for the 'add-service' command"},
		{"-a -r 198.18.1.2", "You need to supply the 'service-address' option for the 'add-server' command"},
		{"-a -t 198.19.0.1:80", "You need to supply the 'real-server' option for the 'add-server' command"},
		{"-d -t 198.19.0.1:80", "You need to supply the 'real-server' option for the 'delete-server' command"},
		{"-A -t 198.19.0.1:80 -w 3", "Illegal 'weight' option with the 'add-service' command"},
		{"-A -t 198.19.0.1:80 -r 198.18.1.2", "Illegal 'real-server' option with the 'add-service' command"},
		{"-D -t 198.19.0.1:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command"},
		{"-C -n", "Illegal 'numeric' option with the 'flush' command"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -p", "Illegal 'persistent' option with the 'add-server' command"},
		{"-S -c", "Illegal 'connection' option with the 'save' command"},
		{"-Z -n", "Illegal 'numeric' option with the 'zero' command"},
		{"-L -s rr", "Illegal 'scheduler' option with the 'list' command"},
		{"-L -c -t 198.19.0.1:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command"},
		{"-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command"},
		{"-L -c --stats", "options conflicts in the list command"},
		{"-L --timeout --persistent-conn", "options conflicts in the list command"},
		{"-A -t 198.19.0.1:80 -t 198.19.0.2:80", "multiple 'service-address' options specified"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -g -m", "multiple 'forwarding-method' options specified"},
		{"-A -t 198.19.0.1:80 -s rr -s wrr", "multiple 'scheduler' options specified"},
		{"-A -t 198.19.0.300:80", `illegal virtual server address[:port] specified: "198.19.0.300:80"`},
		{"-A -t www.example.com:80", `host names are not resolved`},
		{"-A -t 80", `illegal virtual server address[:port] specified: "80"`},
		{"-A -t 198.19.0.1:70000", `port 70000 is not in 0..65535`},
		{"-A -t 198.19.0.1:gopher-ish", `port "gopher-ish" is neither a number`},
		{"-A -t [2001:2::10]", `must be followed by :port`},
		{"-A -t [2001:2::10:443", `missing ']'`},
		{"-A -t [198.19.0.1]:80", `not a numeric IPv6 address`},
		{"-A -t fe80::1%eth0", `zone`},
		{"-A -t 198.19.0.1:", `port "" is neither`},
		{"-A -t 198.19.0.1", "Zero port specified for non-persistent service"},
		{"-A -t 198.19.0.1:80 -o", "One-Packet Scheduling is only for UDP virtual services"},
		{"-A -f 0", "invalid fwmark value `0' specified"},
		{"-A -f 4294967296", "invalid fwmark value `4294967296' specified"},
		{"-A -f x1", "invalid fwmark value `x1' specified"},
		{"-A -t 198.19.0.1:80 -6", "-6 used before -f"},
		{"-A -6 -f 7", "-6 used before -f"},
		{"-A -t 198.19.0.1:80 -p 0", "invalid timeout value `0' specified"},
		{"-A -t 198.19.0.1:80 -p 2678401", "invalid timeout value `2678401'"},
		{"-A -t 198.19.0.1:80 -p 10s", "invalid timeout value `10s'"},
		{"-A -t 198.19.0.1:80 -p -M 255.0.255.0", `"255.0.255.0" is not a contiguous netmask`},
		{"-A -t 198.19.0.1:80 -p -M 24", `illegal virtual server persistent mask specified: "24"`},
		{"-A -t [2001:2::10]:443 -p -M 129", `illegal ipv6 netmask specified: "129"`},
		{"-A -t [2001:2::10]:443 -p -M 0", `illegal ipv6 netmask specified: "0"`},
		{"-A -t 198.19.0.1:80 -s", "-s: missing argument"},
		{"-A -t 198.19.0.1:80 -s averyveryverylongname", `illegal scheduler specified`},
		{"-A -t 198.19.0.1:80 -b flag-9", "invalid scheduler flag `flag-9'"},
		{"-A -t 198.19.0.1:80 -b sh-port", "incompatible scheduler flag `sh-port': it needs the sh scheduler, not wlc"},
		{"-A -t 198.19.0.1:80 -s sh -b mh-port", "incompatible scheduler flag `mh-port'"},
		{"-A -t 198.19.0.1:80 -b ,", "invalid scheduler flag `,'"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -w 65536", `illegal weight specified: "65536" is not an integer in 0..65535`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -w -1", `illegal weight specified: "-1"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -w abc", `illegal weight specified: "abc"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -x 2147483648", `illegal u_threshold specified: "2147483648"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -y x", `illegal l_threshold specified: "x"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.256", `illegal real server address[:port] specified: "198.18.1.256"`},
		{"-a -t 198.19.0.1:80 -r [2001:2::1:1]:80", "Different address family is allowed only for tunneling servers"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 --tun-type gue", "Tunnel options conflict with forward method"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type vxlan", `illegal tunnel type specified: "vxlan"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-port 6080", "Illegal 'tun-port' option with the 'ipip' tunnel type"},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type gue --tun-port 0", `illegal tunnel port specified: "0"`},
		{"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-remcsum",
			"The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"},
		{"--set 900 120", "--set option requires 3 timeout values"},
		{"--set 900 120 x", "invalid timeout value `x' specified"},
		{"--set 900 120 2678401", "invalid timeout value `2678401'"},
		{"--set 1 2 3 4", "unexpected argument 4"},
		{"-C extra", "unexpected argument extra"},
		{"-A -t 198.19.0.1:80 --bogus", "--bogus: unknown option"},
		{"-A -t 198.19.0.1:80 -Q", `"-Q": unknown option`},
		{"--", "no command specified"},
		{"foo", `no command specified: got "foo"`},
		{"-- -A", `no command specified: got "-A"`},
		{"-C --clear=yes", "--clear: option does not take an argument"},
		{"-A --tcp-service", "--tcp-service: missing argument"},
		{"-A -t 198.19.0.1:80 --persistent=", "--persistent=: empty argument"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			c, err := Parse(strings.Fields(tt.args))
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error containing %q", tt.args, *c, tt.want)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("Parse(%q) error %q, want it to contain %q", tt.args, msg, tt.want)
			}
		})
	}
}

// TestParseNotSupported checks that ipvsadm options afvs cannot honour
// fail clearly and recognisably.
func TestParseNotSupported(t *testing.T) {
	for _, args := range []string{
		"-A -t 198.19.0.1:80 -p --pe sip",
		"-A --sctp-service 198.19.0.1:80",
	} {
		_, err := Parse(strings.Fields(args))
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("Parse(%q) = %v, want ErrNotSupported", args, err)
			continue
		}
		if !strings.Contains(err.Error(), "not supported by afvs") {
			t.Errorf("Parse(%q) error %q does not say it is unsupported", args, err)
		}
	}
}

// TestArgsRoundTrip checks that Args renders every parseable command
// back into an equal one.
func TestArgsRoundTrip(t *testing.T) {
	for _, line := range []string{
		"-A -t 198.19.0.1:80 -s rr -p 60 -M 255.255.0.0 -b flag-1,flag-3",
		"-E -u 198.19.0.1:53 -o",
		"-A -f 7 -6 -p -M 48",
		"-D -t [2001:2::10]:443",
		"-C", "-R", "-S -n",
		"-a -t 198.19.0.1:80 -r 198.18.1.2 -i -w 7 -x 10 -y 5",
		"-a -t 198.19.0.1:80 -r 198.18.1.2 -i --tun-type gue --tun-port 6080",
		"-e -u 198.19.0.1:53 -r 198.18.1.2:5353 -m -w 0",
		"-d -f 7 -r 198.18.1.2",
		"-L -n -c --persistent-conn",
		"-L --stats --exact --nosort -u 198.19.0.1:53",
		"-L --timeout",
		"-Z -f 7",
		"--set 1 2 3",
		"-h", "-v",
		"-L --daemon",
		"--start-daemon master",
		"--start-daemon backup --mcast-interface veth1 --syncid 9 --sync-maxlen 1400 --mcast-group ff02::1:2 --mcast-port 9000 --mcast-ttl 4",
		"--stop-daemon backup",
		"--stop-daemon master --syncid 3",
	} {
		c, err := Parse(strings.Fields(line))
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		again, err := Parse(c.Args())
		if err != nil {
			t.Fatalf("Parse(Args() = %q): %v", c.Args(), err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Errorf("%q -> %q changed the command:\n%+v\n%+v", line, c.Args(), *c, *again)
		}
	}
}

// TestRulesComplete guards the legality table: every command that reaches
// checkRules has a row, and every row covers every option.
func TestRulesComplete(t *testing.T) {
	for k := List; k <= StopDaemon; k++ {
		row, ok := rules[k]
		if k == Help || k == Version {
			if ok {
				t.Errorf("%s has a rules row but never reaches checkRules", k)
			}
			continue
		}
		if len(row) != int(numOpts) || strings.Trim(row, "+x1 ") != "" {
			t.Errorf("rules[%s] = %q: want %d characters from \"+x1 \"", k, row, numOpts)
		}
	}
}

// TestHelpAndVersionEndParsing: ipvsadm prints help or its version and
// exits at the letter, as popt hands it over, also inside a bundle or
// with words after it: what follows ("-hX", "-vLn --frob") is never
// looked at, so the command equals a bare -h or -v and renders and
// reparses to it, the property FuzzParse checks. FuzzParse found "-hX"
// parsing to help with --exact set, which Args dropped; the case is kept
// in its corpus (help_bundle_hX).
func TestHelpAndVersionEndParsing(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Kind
	}{
		{"-hX", Help}, {"-hn", Help}, {"-hL", Help}, {"-hZZ", Help}, {"-h -X", Help}, {"--help -X", Help},
		{"-vX", Version}, {"-vLn --frob", Version}, {"--version -n", Version},
	} {
		c, err := Parse(strings.Fields(tc.line))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.line, err)
			continue
		}
		if want := base(tc.want); !reflect.DeepEqual(*c, want) {
			t.Errorf("Parse(%q) = %+v, want a bare %v", tc.line, *c, tc.want)
		}
		back, err := Parse(c.Args())
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("Parse(%q) renders as %q, which reparses to %+v, %v", tc.line, c.Args(), back, err)
		}
	}
}

// TestParseExitStatus: ipvsadm 1.31 exits 255 when popt refuses the line
// (tryhelp_exit(-1), or parse_options returning -1) and 2 when ipvsadm
// refuses it itself (fail(2, ...)).
func TestParseExitStatus(t *testing.T) {
	for args, want := range map[string]int{
		"-A -t 198.19.0.1:80 --bogus":                255, // popt: unknown option
		"-A -t 198.19.0.1:80 -Q":                     255,
		"-A -t 198.19.0.1:80 -s":                     255, // popt: missing argument
		"-C --clear=yes":                             255, // popt: unwanted argument
		"-t 198.19.0.1:80 -A":                        255, // first option is no command: tryhelp_exit
		"foo":                                        255,
		"-A -D -t 198.19.0.1:80":                     2, // invalid option `-D'
		"-A -f -1":                                   2, // invalid fwmark value
		"-A -t 198.19.0.1:80 -6":                     2, // -6 used before -f
		"-A -t 198.19.0.1:80 -b flag-9":              2, // invalid scheduler flag
		"-A -t 198.19.0.1:80 -w 1":                   2, // Illegal 'weight' option
		"-a -t 198.19.0.1:80 -r 198.18.0.1 -w 70000": 2,
	} {
		_, err := Parse(strings.Fields(args))
		if err == nil {
			t.Errorf("%s: accepted", args)
			continue
		}
		if got := ExitStatus(err); got != want {
			t.Errorf("%s: %v: exit status %d, want %d", args, err, got, want)
		}
	}
	_, err := ParseRestore(strings.NewReader("-C\n-R\n"))
	if err == nil || ExitStatus(err) != 255 {
		t.Errorf("-R inside -R: %v, status %d; want 255 (tryhelp_exit)", err, ExitStatus(err))
	}
	_, err = ParseRestore(strings.NewReader("-C\n-A -f 0\n"))
	if err == nil || ExitStatus(err) != 2 {
		t.Errorf("restore with a bad mark: %v, status %d; want 2", err, ExitStatus(err))
	}
}

// TestParseErrorOrder: ipvsadm reads -M and -r while it reads the
// options, then --set's values and leftover words, then -b, and only then
// checks the options against the command; with several faults, the first
// in that order is the one reported.
func TestParseErrorOrder(t *testing.T) {
	for args, want := range map[string]string{
		"-D -t 198.19.0.1:80 -b flag-9":           "invalid scheduler flag `flag-9'",
		"-D -t 198.19.0.1:80 -M 255.0.x":          "illegal virtual server persistent mask specified",
		"-D -t 198.19.0.1:80 -r 198.18.0.x":       "illegal real server address[:port] specified",
		"-a -t 198.19.0.1:80 -r 198.18.0.x extra": "illegal real server address[:port] specified",
		"-D -t 198.19.0.1:80 -b flag-9 extra":     "unexpected argument extra",
		"-A -t 198.19.0.1:80 -b sh-port -w 2":     "incompatible scheduler flag `sh-port'",
		"-A -t 198.19.0.1:0 -b flag-9":            "invalid scheduler flag `flag-9'",
		"-a -t 198.19.0.1:80 -r 2001:2::1 -b x,":  "invalid scheduler flag `x'",
	} {
		_, err := Parse(strings.Fields(args))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v; want an error starting %q", args, err, want)
		}
	}
}
