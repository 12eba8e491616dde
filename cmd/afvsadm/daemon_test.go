package main

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
)

// TestSyncDaemonCommands: afvsadm starts and stops the daemon's sync
// daemons as ipvsadm does, -L --daemon lists them as ipvsadm 1.31 prints
// the kernel's, and the kernel's refusals come out in ipvsadm's words.
func TestSyncDaemonCommands(t *testing.T) {
	serve(t)
	if out := mustAdm(t, "-L", "--daemon"); out != "" {
		t.Errorf("-L --daemon with no sync daemon printed %q", out)
	}
	// As the kernel, a running role is refused before the interface is
	// looked at; with none running an unknown interface is refused.
	if out, errOut, code := adm(t, "", "--start-daemon", "backup", "--mcast-interface", "nosuchdev0"); code != 255 || out != "" || !strings.Contains(errOut, `mcast-interface "nosuchdev0": no such device`) {
		t.Errorf("unknown interface: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	mustAdm(t, "--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "9", "--mcast-port", "18848")
	mustAdm(t, "--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "3", "--sync-maxlen", "1000", "--mcast-ttl", "2")
	want := "master sync daemon (mcast=lo, syncid=3, maxlen=1000, group=224.0.0.81, port=8848, ttl=2)\n" +
		"backup sync daemon (mcast=lo, syncid=9, maxlen=65507, group=224.0.0.81, port=18848, ttl=1)\n"
	if out := mustAdm(t, "-L", "--daemon"); out != want {
		t.Errorf("-L --daemon printed\n%s\nwant\n%s", out, want)
	}
	for _, tc := range []struct {
		args string
		code int
		want string
	}{
		{"--start-daemon master --mcast-interface lo", 255, "Daemon has already run"},
		{"--start-daemon leader", 2, `illegal start-daemon parameter specified: "leader"`},
		{"--start-daemon master --mcast-ttl 0", 2, `illegal mcast-ttl specified: "0"`},
	} {
		out, errOut, code := adm(t, "", strings.Fields(tc.args)...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("afvsadm %s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	mustAdm(t, "--stop-daemon", "master")
	if out := mustAdm(t, "-L", "--daemon"); !strings.HasPrefix(out, "backup sync daemon") || strings.Contains(out, "master") {
		t.Errorf("after --stop-daemon master: %q", out)
	}
	mustAdm(t, "--stop-daemon", "backup")
	if out, errOut, code := adm(t, "", "--stop-daemon", "backup"); code != 255 || out != "" || errOut != "No daemon is running\n" {
		t.Errorf("--stop-daemon with none running: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestSyncDaemonIPv6Group: --mcast-group takes an IPv6 group as ipvsadm
// does and hands it to the daemon, -L --daemon prints it as ipvsadm 1.31's
// list_daemon prints the kernel's IPv6 daemon (inet_ntop, no brackets,
// maxlen the MTU less 48), and a group the daemon refuses is refused
// naming it, with nothing started. The daemon here is controltest.Sync,
// the sync manager's checks and defaults without sockets: Linux routes
// no IPv6 multicast out of lo (syncd's tests run the sockets).
func TestSyncDaemonIPv6Group(t *testing.T) {
	s := controltest.ServeWithSync(t, &controltest.Sync{MTU: 65536})
	t.Setenv("AFVS_SOCKET", s.Socket)
	mustAdm(t, "--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "9", "--mcast-group", "ff02::8848")
	mustAdm(t, "--start-daemon", "master", "--mcast-interface", "lo", "--syncid", "9", "--mcast-group", "FF05:0:0:0:0:0:0:8848", "--mcast-ttl", "3")
	want := "master sync daemon (mcast=lo, syncid=9, maxlen=1452, group=ff05::8848, port=8848, ttl=3)\n" +
		"backup sync daemon (mcast=lo, syncid=9, maxlen=65487, group=ff02::8848, port=8848, ttl=1)\n"
	if out := mustAdm(t, "-L", "--daemon"); out != want {
		t.Errorf("-L --daemon printed\n%s\nwant\n%s", out, want)
	}
	mustAdm(t, "--stop-daemon", "master")
	for _, tc := range []struct {
		args string
		code int
		want string
	}{
		{"--start-daemon master --mcast-interface lo --mcast-group ff01::8848", 255, "master sync daemon: mcast-group ff01::8848: multicast scope 1"},
		{"--start-daemon master --mcast-interface lo --mcast-group ::ffff:224.0.0.81", 2, "invalid IPv6 mcast-group `::ffff:224.0.0.81'"},
		{"--start-daemon master --mcast-interface lo --mcast-group 2001:2::1", 2, "invalid IPv6 mcast-group `2001:2::1'"},
	} {
		out, errOut, code := adm(t, "", strings.Fields(tc.args)...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("afvsadm %s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
	if out := mustAdm(t, "-L", "--daemon"); out != "backup sync daemon (mcast=lo, syncid=9, maxlen=65487, group=ff02::8848, port=8848, ttl=1)\n" {
		t.Errorf("after the refusals -L --daemon printed %q: want the backup alone", out)
	}
}
