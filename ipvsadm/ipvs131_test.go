package ipvsadm

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// quirkFixture is the table behind quirks_*.golden (see golden.sh): keys
// whose unsigned difference is 2^31 or more, marks printed signed, generic
// scheduler flags, and three real servers that compare in a cycle, given
// in the kernel's dump order (newest first).
func quirkFixture() *Snapshot {
	a := netip.MustParseAddr
	rs := func(addr string) Dest { return Dest{Addr: a(addr), Port: 80, Fwd: Route, Weight: 1} }
	return &Snapshot{Size: 4096, Services: []Service{
		{Virtual: Virtual{Proto: TCP, Addr: a("10.0.0.1"), Port: 80}, Sched: "rr", Netmask: 32,
			Dests: []Dest{rs("192.168.0.1"), rs("100.64.0.1"), rs("10.0.0.2")}},
		{Virtual: Virtual{Proto: TCP, Addr: a("172.16.0.1"), Port: 80}, Sched: "wlc", Netmask: 32},
		{Virtual: Virtual{Proto: FWM, FWMark: 7}, Sched: "sh", SchedFlags: []string{"flag-1", "flag-2"}, Netmask: 32},
		{Virtual: Virtual{Proto: TCP, Addr: a("192.168.1.1"), Port: 443}, Sched: "mh", SchedFlags: []string{"flag-1", "flag-3"}, Netmask: 32},
		{Virtual: Virtual{Proto: FWM, FWMark: 3000000000}, Sched: "rr", SchedFlags: []string{"flag-3"}, Netmask: 32},
		{Virtual: Virtual{Proto: UDP, Addr: a("10.0.0.1"), Port: 53}, Sched: "wlc", Netmask: 32},
		{Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.1"), Port: 80}, Sched: "wlc", Netmask: 32},
		{Virtual: Virtual{Proto: FWM, FWMark: 4294967295}, Sched: "wlc", Netmask: 32},
	}}
}

// TestIPVSCmpServices: -L and -S order services and real servers as
// ipvsadm 1.31 does with ipvs_cmp_services and ipvs_cmp_dests under
// glibc's merge sort, print marks of 2^31 or more signed, and name
// scheduler flags by bit (print_sched_flags).
func TestIPVSCmpServices(t *testing.T) {
	for _, tt := range []struct{ args, golden string }{
		{"-L -n", "quirks_list.golden"},
		{"-S -n", "quirks_save.golden"},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", tt.golden))
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(strings.Fields(tt.args))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := quirkFixture().Write(&buf, c); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != string(want) {
			t.Errorf("%s: %s mismatch\n--- got\n%s--- want\n%s", tt.args, tt.golden, got, want)
			diffLines(t, got, string(want))
		}
	}
}

// TestIPVSCmpDestsOrderMatters: with a comparison that is not transitive
// the result depends on the input order, as it does in ipvsadm: the same
// three servers dumped in another order list in another order.
func TestIPVSCmpDestsOrderMatters(t *testing.T) {
	a := netip.MustParseAddr
	list := func(in ...string) string {
		svc := &Service{}
		for _, s := range in {
			svc.Dests = append(svc.Dests, Dest{Addr: a(s)})
		}
		var out []string
		for _, d := range sortedDests(svc, true) {
			out = append(out, d.Addr.String())
		}
		return strings.Join(out, " ")
	}
	// Worked by hand: msort splits [x] [y z], sorts [y z], then merges.
	for _, c := range []struct{ in, want string }{
		{"192.168.0.1 100.64.0.1 10.0.0.2", "192.168.0.1 10.0.0.2 100.64.0.1"},
		{"10.0.0.2 100.64.0.1 192.168.0.1", "10.0.0.2 100.64.0.1 192.168.0.1"},
		{"100.64.0.1 10.0.0.2 192.168.0.1", "100.64.0.1 192.168.0.1 10.0.0.2"},
	} {
		if got := list(strings.Fields(c.in)...); got != c.want {
			t.Errorf("dumped %s: listed %s, want %s", c.in, got, c.want)
		}
	}
}

// TestParseFwmark: ipvsadm 1.31's parse_fwmark (strtol into an unsigned
// long, then l <= 0 || l > UINT_MAX) takes 1..4294967295 with an
// optional '+' and refuses zero and every negative mark, with its own
// words.
func TestParseFwmark(t *testing.T) {
	for in, want := range map[string]uint32{"4294967295": 4294967295, "3000000000": 3000000000, "2147483648": 1 << 31, "7": 7, "+7": 7} {
		c, err := Parse([]string{"-A", "-f", in})
		if err != nil {
			t.Errorf("-A -f %s: %v", in, err)
			continue
		}
		if c.Service.FWMark != want {
			t.Errorf("-A -f %s: mark %d, want %d", in, c.Service.FWMark, want)
		}
	}
	for _, in := range []string{"0", "-0", "-1", "-1294967296", "-2147483648", "4294967296", "--1", "-", "+", "+-1", "7x", ""} {
		_, err := Parse([]string{"-A", "-f", in})
		if want := "invalid fwmark value `" + in + "' specified"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("-A -f %q: %v, want an error starting %q", in, err, want)
		}
	}
}

// TestFwmarkUnsignedRoundTrip: print_service_entry writes marks with %u
// ("FWM  %u", "-f %u"), so -S output with marks of 2^31 or more parses
// back to the same marks.
func TestFwmarkUnsignedRoundTrip(t *testing.T) {
	snap := &Snapshot{Services: []Service{
		{Virtual: Virtual{Proto: FWM, FWMark: 4294967295}, Sched: "wlc", Netmask: 32},
		{Virtual: Virtual{Proto: FWM, FWMark: 1 << 31, IPv6: true}, Sched: "rr", Netmask: 128,
			Dests: []Dest{{Addr: netip.MustParseAddr("2001:2::11"), Fwd: Route, Weight: 1}}},
	}}
	var buf bytes.Buffer
	if err := snap.WriteSave(&buf); err != nil {
		t.Fatal(err)
	}
	want := "-A -f 2147483648 -6 -s rr\n" +
		"-a -f 2147483648 -6 -r [2001:2::11]:0 -g -w 1\n" +
		"-A -f 4294967295 -s wlc\n"
	if buf.String() != want {
		t.Fatalf("-S wrote\n%s\nwant\n%s", buf.String(), want)
	}
	cmds, err := ParseRestore(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("-R of -S output: %v", err)
	}
	if len(cmds) != 3 || cmds[0].Service.FWMark != 1<<31 || !cmds[0].Service.IPv6 || cmds[2].Service.FWMark != 4294967295 {
		t.Errorf("-R read %+v", cmds)
	}
	buf.Reset()
	if err := snap.WriteList(&buf, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"\nFWM  2147483648 IPv6 rr\n", "\nFWM  4294967295 wlc\n"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("-L lacks %q:\n%s", line[1:], buf.String())
		}
	}
}

// TestListDaemon: -L --daemon lists running sync daemons; afvs runs none,
// so it prints nothing, as ipvsadm's list_daemon does then. It is
// exclusive with the other listing kinds, as in ipvsadm's option table.
func TestListDaemon(t *testing.T) {
	c, err := Parse(strings.Fields("-L --daemon"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := quirkFixture().Write(&buf, c); err != nil || buf.Len() != 0 {
		t.Errorf("-L --daemon wrote %q, %v; want nothing", buf.String(), err)
	}
	if _, err := Parse(strings.Fields("-L --daemon -c")); err == nil {
		t.Error("-L --daemon -c accepted")
	}
	if _, err := Parse(strings.Fields("-A -t 198.19.0.1:80 --daemon")); err == nil {
		t.Error("-A --daemon accepted")
	}
}

// TestParseTunTypeGRE: ipvsadm 1.31 takes --tun-type gre, with
// --tun-csum or --tun-nocsum and without --tun-port or --tun-remcsum.
func TestParseTunTypeGRE(t *testing.T) {
	c, err := Parse(strings.Fields("-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-csum"))
	if err != nil || c.Tunnel.Type != GRE || c.Tunnel.Csum != Csum {
		t.Fatalf("gre: %+v, %v", c, err)
	}
	back, err := Parse(c.Args())
	if err != nil || back.Tunnel != c.Tunnel {
		t.Errorf("Args %q reparse to %+v, %v", c.Args(), back, err)
	}
	for args, want := range map[string]string{
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-port 6080":         "Illegal 'tun-port' option with the 'gre' tunnel type",
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-remcsum":           "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-csum --tun-nocsum": "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
		// tunnel_opt_check walks the options in column order, so the
		// conflict is found before the illegal --tun-remcsum.
		"-a -t 198.19.0.1:80 -r 198.18.0.11 -i --tun-type gre --tun-remcsum --tun-csum --tun-nocsum": "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type",
	} {
		if _, err := Parse(strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}

// TestParseHelpBundled: ipvsadm prints help or its version the moment it
// meets -h or -v, so what follows in the same bundle is never read.
func TestParseHelpBundled(t *testing.T) {
	for in, want := range map[string]Kind{"-hX": Help, "-vx1": Version, "-hZ": Help} {
		c, err := Parse([]string{in})
		if err != nil || c.Kind != want || c.List.Exact || c.Upper != 0 {
			t.Errorf("Parse(%q) = %+v, %v; want a bare %s", in, c, err, want)
		}
	}
}

// TestPrintSchedFlagsUnnamed: under sh and mh, print_sched_flags names
// only IP_VS_SVC_F_SCHED1 and SCHED2, yet the caller prints " (" and ")"
// in -L, and " -b " in -S, whenever any of the three bits is set: flag-3
// alone lists as "sh ()" and saves as "-b " with nothing after it.
func TestPrintSchedFlagsUnnamed(t *testing.T) {
	a := netip.MustParseAddr
	snap := &Snapshot{Services: []Service{
		{Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.1"), Port: 80}, Sched: "sh", SchedFlags: []string{"flag-3"}, Netmask: 32},
		{Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.2"), Port: 80}, Sched: "mh", SchedFlags: []string{"flag-2", "flag-3"}, Netmask: 32},
		{Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.3"), Port: 80}, Sched: "rr", SchedFlags: []string{"flag-3"}, Netmask: 32},
	}}
	var buf bytes.Buffer
	if err := snap.WriteList(&buf, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	wantList := "IP Virtual Server version 1.2.1 (size=0)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  198.19.0.1:80 sh ()\n" +
		"TCP  198.19.0.2:80 mh (mh-port)\n" +
		"TCP  198.19.0.3:80 rr (flag-3)\n"
	if buf.String() != wantList {
		t.Errorf("-L wrote\n%s\nwant\n%s", buf.String(), wantList)
	}
	buf.Reset()
	if err := snap.WriteSave(&buf); err != nil {
		t.Fatal(err)
	}
	wantSave := "-A -t 198.19.0.1:80 -s sh -b \n" +
		"-A -t 198.19.0.2:80 -s mh -b mh-port\n" +
		"-A -t 198.19.0.3:80 -s rr -b flag-3\n"
	if buf.String() != wantSave {
		t.Errorf("-S wrote\n%q\nwant\n%q", buf.String(), wantSave)
	}
}

// TestTunInfoGRE: fwd_tun_info shows a GRE server as "gre:" and its
// checksum mode, and print_tunnel_rule saves it with --tun-type gre and
// the checksum option.
func TestTunInfoGRE(t *testing.T) {
	a := netip.MustParseAddr
	snap := &Snapshot{Services: []Service{{
		Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.1"), Port: 80}, Sched: "rr", Netmask: 32,
		Dests: []Dest{
			{Addr: a("198.18.0.11"), Port: 80, Fwd: Tunnel, Weight: 1, Tunnel: TunnelInfo{Type: GRE, Csum: Csum}},
			{Addr: a("198.18.0.12"), Port: 80, Fwd: Tunnel, Weight: 2, Tunnel: TunnelInfo{Type: GRE}},
		},
	}}}
	var buf bytes.Buffer
	if err := snap.WriteList(&buf, ListOptions{TunInfo: true}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  -> 198.18.0.11:80               Tunnel  gre:+c        1      0          0         \n",
		"  -> 198.18.0.12:80               Tunnel  gre:-c        2      0          0         \n",
	} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("--tun-info lacks %q:\n%s", line, buf.String())
		}
	}
	buf.Reset()
	if err := snap.WriteSave(&buf); err != nil {
		t.Fatal(err)
	}
	want := "-A -t 198.19.0.1:80 -s rr\n" +
		"-a -t 198.19.0.1:80 -r 198.18.0.11:80 -i -w 1 --tun-type gre --tun-csum\n" +
		"-a -t 198.19.0.1:80 -r 198.18.0.12:80 -i -w 2 --tun-type gre --tun-nocsum\n"
	if buf.String() != want {
		t.Errorf("-S wrote\n%s\nwant\n%s", buf.String(), want)
	}
	cmds, err := ParseRestore(strings.NewReader(buf.String()))
	if err != nil || len(cmds) != 3 || cmds[1].Tunnel != (TunnelInfo{Type: GRE, Csum: Csum}) || cmds[2].Tunnel != (TunnelInfo{Type: GRE}) {
		t.Errorf("-R of -S output: %+v, %v", cmds, err)
	}
}
