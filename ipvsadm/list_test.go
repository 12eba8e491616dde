package ipvsadm

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is the table behind the golden files; testdata/golden.sh types
// the same values into ipvsadm's format strings. Services and real
// servers are deliberately out of order so that sorting is exercised.
func fixture() *Snapshot {
	a := netip.MustParseAddr
	ap := netip.MustParseAddrPort
	return &Snapshot{
		Size:     4096,
		Timeouts: Timeouts{TCP: 900, TCPFin: 120, UDP: 300},
		Services: []Service{
			{
				Virtual: Virtual{Proto: TCP, Addr: a("198.19.0.1"), Port: 80},
				Sched:   "wlc", Persistent: true, Timeout: 300, Netmask: 24,
				Stats: Stats{123, 99999999, 100000000, 1234567890, 123456789012345},
				Rate:  Rate{5, 1200, 0, 150000000, 0},
				Dests: []Dest{
					{Addr: a("198.18.1.3"), Port: 80, Fwd: Route, Weight: 2, Upper: 1000, Lower: 800,
						Active: 12, Inactive: 40, PersistConns: 3,
						Stats: Stats{7, 70, 0, 7000, 0}, Rate: Rate{1, 10, 0, 800, 0}},
					{Addr: a("198.18.1.2"), Port: 80, Fwd: Route, Weight: 1, Active: 5, Inactive: 7,
						Stats: Stats{116, 99999929, 100000000, 1234560890, 123456789005345},
						Rate:  Rate{3, 700, 0, 987654321, 0}},
				},
			},
			{
				Virtual: Virtual{Proto: UDP, Addr: a("198.18.0.53"), Port: 53},
				Sched:   "rr", Netmask: 32, OnePacket: true,
				Stats: Stats{9, 9, 0, 5000000000000, 0},
				Dests: []Dest{
					{Addr: a("198.18.2.1"), Port: 53, Fwd: Masq, Weight: 1, Inactive: 3,
						Stats: Stats{9, 9, 0, 5000000000000, 0}, Rate: Rate{CPS: 123456789}},
				},
			},
			{
				Virtual: Virtual{Proto: FWM, FWMark: 7},
				Sched:   "sh", SchedFlags: []string{"sh-fallback", "sh-port"}, Netmask: 32,
				Dests: []Dest{
					{Addr: a("198.18.3.2"), Fwd: Tunnel, Tunnel: TunnelInfo{Type: GUE, Port: 6080, Csum: Csum}},
					{Addr: a("198.18.3.1"), Fwd: Tunnel, Weight: 10, Active: 1, Inactive: 2},
					{Addr: a("198.18.3.3"), Fwd: Local, Weight: 1},
				},
			},
			{
				Virtual: Virtual{Proto: TCP, Addr: a("2001:2::10"), Port: 443},
				Sched:   "mh", SchedFlags: []string{"mh-port"}, Persistent: true, Timeout: 600, Netmask: 64,
				Dests: []Dest{
					{Addr: a("2001:2::1:1"), Port: 443, Fwd: Route, Weight: 1, Active: 2},
					{Addr: a("198.18.4.1"), Port: 443, Fwd: Tunnel, Weight: 5},
				},
			},
			{
				Virtual: Virtual{Proto: FWM, FWMark: 9, IPv6: true},
				Sched:   "wrr", Netmask: 128,
			},
			{
				Virtual: Virtual{Proto: TCP, Addr: a("198.18.0.1"), Port: 0},
				Sched:   "wlc", Persistent: true, Timeout: 3600, Netmask: 32,
				Dests: []Dest{{Addr: a("198.18.0.2"), Fwd: Route, Weight: 1}},
			},
		},
		Conns: []Conn{
			{Proto: TCP, Client: ap("198.18.9.1:40000"), Virtual: ap("198.19.0.1:80"), Dest: ap("198.18.1.2:80"),
				State: "ESTABLISHED", Expires: 899*time.Second + 400*time.Millisecond},
			{Proto: TCP, Client: ap("[2001:2::99]:50000"), Virtual: ap("[2001:2::10]:443"), Dest: ap("[2001:2::1:1]:443"),
				State: "FIN_WAIT", Expires: 5 * time.Second},
			{Proto: UDP, Client: ap("198.18.9.2:5353"), Virtual: ap("198.18.0.53:53"), Dest: ap("198.18.2.1:53"),
				State: "UDP", Expires: 100 * time.Minute, PEName: "sip", PEData: "call-42"},
			{Proto: TCP, Client: ap("198.18.9.3:40001"), Virtual: ap("198.19.0.1:80"), Dest: ap("[2001:2::1111:2222:3333:4444]:80"),
				State: "SYN_RECV", Expires: 60 * time.Second},
			{Proto: TCP, Client: ap("[2001:2:0:ffff:ffff:ffff:ffff:ffff]:65535"), Virtual: ap("[2001:2::10]:443"), Dest: ap("198.18.4.1:443"),
				State: "ESTABLISHED", Expires: 59*time.Second + 999*time.Millisecond},
		},
	}
}

// TestGolden drives every listing through Parse and Snapshot.Write, the
// path afvsadm takes, and compares with ipvsadm's formats byte for byte.
func TestGolden(t *testing.T) {
	tests := []struct {
		args   string
		golden string
	}{
		{"-L -n", "list.golden"},
		{"-Ln --sort", "list.golden"},
		{"--list --numeric --nosort", "nosort.golden"},
		{"-L -n -t 198.19.0.1:80", "service.golden"},
		{"-L -n --stats", "stats.golden"},
		{"-L -n --stats --exact", "stats_exact.golden"},
		{"-L -n --rate", "rate.golden"},
		{"-LnX --rate", "rate_exact.golden"},
		{"-L -n --thresholds", "thresholds.golden"},
		{"-L -n --persistent-conn", "persistent_conn.golden"},
		{"-L -n --tun-info", "tun_info.golden"},
		{"-L -n -c", "conns.golden"},
		{"-Lnc", "conns.golden"},
		{"-L -n -c --persistent-conn", "conns_pc.golden"},
		{"-L --timeout", "timeout.golden"},
		{"-S -n", "save.golden"},
		{"--save", "save.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(strings.Fields(tt.args))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			s := fixture()
			var buf bytes.Buffer
			if err := s.Write(&buf, c); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("%s mismatch\n--- got\n%s--- want\n%s", tt.golden, got, want)
				diffLines(t, got, string(want))
			}
		})
	}
}

// diffLines reports the first differing line, with its bytes quoted so
// trailing blanks show.
func diffLines(t *testing.T, got, want string) {
	t.Helper()
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("first difference at line %d:\n got %q\nwant %q", i+1, gl, wl)
			return
		}
	}
}

func TestWriteLeavesSnapshotUnsorted(t *testing.T) {
	s := fixture()
	if err := s.WriteList(&bytes.Buffer{}, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteSave(&bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if s.Services[0].Port != 80 || s.Services[0].Dests[0].Addr != netip.MustParseAddr("198.18.1.3") {
		t.Errorf("listing reordered the caller's snapshot: first service %v", s.Services[0].Virtual)
	}
}

func TestWriteServiceMissing(t *testing.T) {
	c, err := Parse([]string{"-L", "-n", "-u", "198.19.0.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	err = fixture().Write(&bytes.Buffer{}, c)
	if !errors.Is(err, ErrNoService) {
		t.Errorf("listing a missing service: got %v, want %v", err, ErrNoService)
	}
}

func TestWriteRejectsNonListing(t *testing.T) {
	c, err := Parse([]string{"-C"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture().Write(&bytes.Buffer{}, c); err == nil {
		t.Error("Write accepted -C, which prints nothing")
	}
}

func TestEmptyTable(t *testing.T) {
	var buf bytes.Buffer
	if err := (&Snapshot{Size: 4096}).WriteList(&buf, ListOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
	if buf.String() != want {
		t.Errorf("empty table:\n%q\nwant\n%q", buf.String(), want)
	}
	buf.Reset()
	if err := (&Snapshot{}).WriteSave(&buf); err != nil || buf.Len() != 0 {
		t.Errorf("empty save wrote %q, %v; want nothing", buf.String(), err)
	}
}

// TestLargenum checks every boundary of ipvsadm's shortening.
func TestLargenum(t *testing.T) {
	tests := []struct {
		v     uint64
		exact bool
		want  string
	}{
		{0, false, "        0"},
		{99_999_999, false, " 99999999"},
		{100_000_000, false, "  100000K"},
		{999_999_999, false, "  999999K"},
		{1_000_000_000, false, "    1000M"},
		{99_999_999_999, false, "   99999M"},
		{100_000_000_000, false, "     100G"},
		{99_999_999_999_999, false, "   99999G"},
		{100_000_000_000_000, false, "     100T"},
		{^uint64(0), false, "18446744T"},
		{12345678, true, " 12345678"},
		{123456789, true, " 123456789"},
		{^uint64(0), true, " 18446744073709551615"},
	}
	for _, tt := range tests {
		if got := string(appendLargenum(nil, tt.v, tt.exact)); got != tt.want {
			t.Errorf("largenum(%d, exact=%v) = %q, want %q", tt.v, tt.exact, got, tt.want)
		}
	}
}

// TestNames checks the name columns and masks on the helpers: no numeric
// IPv4 name reaches the width ipvsadm cuts at, and IPv6 names are never cut.
func TestNames(t *testing.T) {
	v := Virtual{Proto: UDP, Addr: netip.MustParseAddr("255.255.255.255"), Port: 65535}
	if got := serviceName(&v); got != "UDP  255.255.255.255:65535" {
		t.Errorf("serviceName = %q", got)
	}
	v6 := Virtual{Proto: TCP, Addr: netip.MustParseAddr("2001:2:ffff:ffff:ffff:ffff:ffff:ffff"), Port: 65535}
	if got, want := serviceName(&v6), "TCP  [2001:2:ffff:ffff:ffff:ffff:ffff:ffff]:65535"; got != want {
		t.Errorf("IPv6 serviceName = %q, want %q (never cut)", got, want)
	}
	// ipvsadm cuts a real server's name at 28 bytes only when the real
	// server itself is IPv4 (e->af != AF_INET6), so the IPv6 real server
	// of an IPv4 service (a 4in6 tunnel) is whole, as in an IPv6 service.
	long := Dest{Addr: netip.MustParseAddr("2001:2::1111:2222:3333:4444"), Port: 8080}
	if got, want := destName(&Service{Virtual: v}, &long), "[2001:2::1111:2222:3333:4444]:8080"; got != want {
		t.Errorf("IPv6 dest of an IPv4 service: destName = %q, want %q (never cut)", got, want)
	}
	if got, want := destName(&Service{Virtual: v6}, &long), "[2001:2::1111:2222:3333:4444]:8080"; got != want {
		t.Errorf("IPv6 dest of an IPv6 service: destName = %q, want %q (never cut)", got, want)
	}
	// glibc's inet_ntop dots an IPv4-compatible address (::/96 with a
	// non-zero seventh word) and an IPv4-mapped one; otherwise it is
	// RFC 5952's text.
	for in, want := range map[string]string{
		"::192.0.2.1": "[::192.0.2.1]:80", "::1.0.0.0": "[::1.0.0.0]:80", "::ffff:192.0.2.1": "[::ffff:192.0.2.1]:80",
		"::1": "[::1]:80", "::2:0": "[::0.2.0.0]:80", "::1:0:0": "[::1:0:0]:80", "2001:2::c000:201": "[2001:2::c000:201]:80",
		"2001:2:0:1::1": "[2001:2:0:1::1]:80", "2001:2::1:0:0:1": "[2001:2::1:0:0:1]:80",
	} {
		if got := hostPort(netip.MustParseAddr(in), 80); got != want {
			t.Errorf("hostPort(%s) = %q, want %q (inet_ntop's text)", in, got, want)
		}
	}
	for bits, want := range map[int]string{0: "0.0.0.0", 1: "128.0.0.0", 24: "255.255.255.0", 32: "255.255.255.255", 40: "255.255.255.255"} {
		if got := maskString(bits, false); got != want {
			t.Errorf("maskString(%d) = %q, want %q", bits, got, want)
		}
	}
}
