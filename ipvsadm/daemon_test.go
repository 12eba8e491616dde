package ipvsadm

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// TestParseDaemon checks the sync daemon's commands and options, with
// ipvsadm's defaults (interface eth0, syncid 0, the rest left to the
// daemon).
func TestParseDaemon(t *testing.T) {
	for _, tc := range []struct {
		line string
		kind Kind
		d    Daemon
	}{
		{"--start-daemon master", StartDaemon, Daemon{State: Master, McastIfn: "eth0"}},
		{"--start-daemon backup --mcast-interface veth1 --syncid 9", StartDaemon, Daemon{State: Backup, McastIfn: "veth1", SyncID: 9}},
		{"--start-daemon=master --syncid=255 --sync-maxlen=65507 --mcast-group=239.1.2.3 --mcast-port=1 --mcast-ttl=255", StartDaemon,
			Daemon{State: Master, McastIfn: "eth0", SyncID: 255, SyncMaxlen: 65507, McastGroup: netip.MustParseAddr("239.1.2.3"), McastPort: 1, McastTTL: 255}},
		{"--start-daemon backup --mcast-group ff02::1:2", StartDaemon, Daemon{State: Backup, McastIfn: "eth0", McastGroup: netip.MustParseAddr("ff02::1:2")}},
		// ipvsadm takes any ff00::/8 group, whatever its scope, as the
		// kernel's ip_vs_genl_new_daemon does; the daemon refuses those
		// that never leave the host (syncd.Check).
		{"--start-daemon master --mcast-interface eth1 --syncid 7 --mcast-group ff05::8848 --mcast-ttl 4", StartDaemon,
			Daemon{State: Master, McastIfn: "eth1", SyncID: 7, McastGroup: netip.MustParseAddr("ff05::8848"), McastTTL: 4}},
		{"--start-daemon master --mcast-group FF0E:0:0:0:0:0:0:51", StartDaemon, Daemon{State: Master, McastIfn: "eth0", McastGroup: netip.MustParseAddr("ff0e::51")}},
		{"--start-daemon master --mcast-group ff01::1", StartDaemon, Daemon{State: Master, McastIfn: "eth0", McastGroup: netip.MustParseAddr("ff01::1")}},
		{"--stop-daemon master", StopDaemon, Daemon{State: Master}},
		{"--stop-daemon backup --syncid 3", StopDaemon, Daemon{State: Backup, SyncID: 3}},
	} {
		c, err := Parse(strings.Fields(tc.line))
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.line, err)
			continue
		}
		if c.Kind != tc.kind || !reflect.DeepEqual(c.Daemon, tc.d) {
			t.Errorf("Parse(%q) = %s %+v, want %s %+v", tc.line, c.Kind, c.Daemon, tc.kind, tc.d)
		}
	}
	c, err := Parse([]string{"-L", "--daemon"})
	if err != nil || c.Kind != List || !c.List.Daemon {
		t.Errorf("-L --daemon: %+v, %v", c, err)
	}
	// ipvsadm's table allows --syncid with -L (and ignores it).
	if _, err := Parse([]string{"-L", "--syncid", "3"}); err != nil {
		t.Errorf("-L --syncid 3: %v", err)
	}
}

// TestParseDaemonErrors checks the refusals, worded as ipvsadm's and
// naming the value.
func TestParseDaemonErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"--start-daemon primary", `illegal start-daemon parameter specified: "primary" is not master or backup`},
		{"--stop-daemon both", `illegal start_daemon specified: "both"`},
		{"--start-daemon", "--start-daemon: missing argument"},
		{"--start-daemon master --syncid 256", `illegal syncid specified: "256" is not an integer in 0..255`},
		{"--start-daemon master --syncid -1", `illegal syncid specified: "-1"`},
		{"--start-daemon master --sync-maxlen 0", `illegal sync-maxlen specified: "0" is not an integer in 1..65507`},
		{"--start-daemon master --sync-maxlen 65508", `illegal sync-maxlen specified: "65508"`},
		{"--start-daemon master --mcast-port 0", `illegal mcast-port specified: "0" is not an integer in 1..65535`},
		{"--start-daemon master --mcast-port 65536", `illegal mcast-port specified: "65536"`},
		{"--start-daemon master --mcast-ttl 0", `illegal mcast-ttl specified: "0" is not an integer in 1..255`},
		{"--start-daemon master --mcast-ttl 256", `illegal mcast-ttl specified: "256"`},
		{"--start-daemon master --mcast-group 198.18.0.1", "invalid IPv4 mcast-group `198.18.0.1'"},
		{"--start-daemon master --mcast-group 224.0.0", "invalid IPv4 mcast-group `224.0.0'"},
		{"--start-daemon master --mcast-group 2001:2::1", "invalid IPv6 mcast-group `2001:2::1': not an IPv6 multicast address (ff00::/8)"},
		{"--start-daemon master --mcast-group ::ffff:224.0.0.81", "invalid IPv6 mcast-group `::ffff:224.0.0.81'"},
		{"--start-daemon master --mcast-group ff02::51%eth0", "invalid IPv6 mcast-group `ff02::51%eth0'"},
		{"--start-daemon master --mcast-group [ff02::51]", "invalid IPv6 mcast-group `[ff02::51]'"},
		{"--start-daemon master --mcast-interface averyveryverylongname", `illegal mcast-interface specified: "averyveryverylongname"`},
		{"--start-daemon master --mcast-interface a/b", `illegal mcast-interface specified: "a/b"`},
		{"--start-daemon master --syncid 1 --syncid 2", "multiple 'syncid' options specified"},
		{"--start-daemon master --stop-daemon master", "multiple commands specified"},
		{"--start-daemon master -n", "Illegal 'numeric' option with the 'start-daemon' command"},
		{"--start-daemon master --daemon", "Illegal 'daemon' option with the 'start-daemon' command"},
		{"--stop-daemon master --mcast-interface eth0", "Illegal 'mcast-interface' option with the 'stop-daemon' command"},
		{"--stop-daemon master --mcast-ttl 2", "Illegal 'mcast-ttl' option with the 'stop-daemon' command"},
		{"-L --mcast-interface eth0", "Illegal 'mcast-interface' option with the 'list' command"},
		{"-L --sync-maxlen 1472", "Illegal 'sync-maxlen' option with the 'list' command"},
		{"-L --daemon --timeout", "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"},
		{"-L --daemon -c", "The option 'daemon' conflicts with the 'connection' option in the 'list' command"},
		{"-L --daemon --stats", "options conflicts in the list command"},
		{"-L --daemon --persistent-conn", "options conflicts in the list command"},
		{"-A -t 198.19.0.1:80 --syncid 1", "Illegal 'syncid' option with the 'add-service' command"},
		{"--start-daemon master extra", "unexpected argument extra"},
	} {
		_, err := Parse(strings.Fields(tc.line))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}

// TestWriteDaemons checks the -L --daemon lines against ipvsadm 1.31's
// list_daemon formats: what a Linux director prints with defaults filled
// in by the kernel, and the optional fields left out when zero.
func TestWriteDaemons(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []Daemon
		want string
	}{
		{"none", nil, ""},
		{"master with the kernel's defaults", []Daemon{{State: Master, McastIfn: "eth0", SyncID: 1, SyncMaxlen: 1472,
			McastGroup: netip.MustParseAddr("224.0.0.81"), McastPort: 8848, McastTTL: 1}},
			"master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"},
		{"both, backup given first", []Daemon{
			{State: Backup, McastIfn: "veth1", SyncID: 0, SyncMaxlen: 8972, McastGroup: netip.MustParseAddr("ff02::8848"), McastPort: 9000, McastTTL: 3},
			{State: Master, McastIfn: "eth0", SyncID: 255},
		}, "master sync daemon (mcast=eth0, syncid=255)\n" +
			"backup sync daemon (mcast=veth1, syncid=0, maxlen=8972, group=ff02::8848, port=9000, ttl=3)\n"},
		// A Linux master started with --mcast-group ff02::51: the kernel
		// fills port 8848, TTL 1 and maxlen 1500 less 48 (IPv6 and UDP
		// headers); list_daemon prints the group with inet_ntop, no
		// brackets.
		{"master on an IPv6 group", []Daemon{{State: Master, McastIfn: "eth1", SyncID: 7, SyncMaxlen: 1452,
			McastGroup: netip.MustParseAddr("ff02::51"), McastPort: 8848, McastTTL: 1}},
			"master sync daemon (mcast=eth1, syncid=7, maxlen=1452, group=ff02::51, port=8848, ttl=1)\n"},
		{"stopped entries are skipped", []Daemon{{State: 0, McastIfn: "eth9"}}, ""},
	} {
		var b bytes.Buffer
		if err := WriteDaemons(&b, tc.ds); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, b.String(), tc.want)
		}
	}
	// Write dispatches -L --daemon to it.
	s := &Snapshot{Daemons: []Daemon{{State: Backup, McastIfn: "eth1", SyncID: 7}}}
	c, _ := Parse([]string{"-L", "--daemon"})
	var b bytes.Buffer
	if err := s.Write(&b, c); err != nil || b.String() != "backup sync daemon (mcast=eth1, syncid=7)\n" {
		t.Errorf("Write(-L --daemon) = %q, %v", b.String(), err)
	}
}
