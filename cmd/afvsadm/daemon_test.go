package main

import (
	"strings"
	"testing"
)

// TestSyncDaemonCommands: afvsadm parses the sync daemon's commands as
// ipvsadm does; the daemon refuses to start or stop one (connection sync
// is not in it yet), and -L --daemon lists no daemon.
func TestSyncDaemonCommands(t *testing.T) {
	serve(t)
	if out := mustAdm(t, "-L", "--daemon"); out != "" {
		t.Errorf("-L --daemon with no sync daemon printed %q", out)
	}
	for _, tc := range []struct {
		args string
		code int
		want string
	}{
		{"--start-daemon master --mcast-interface eth0 --syncid 3", 1, "connection sync is not implemented in the daemon yet"},
		{"--stop-daemon backup", 1, "connection sync is not implemented in the daemon yet"},
		{"--start-daemon leader", 2, `illegal start-daemon parameter specified: "leader"`},
		{"--start-daemon master --mcast-ttl 0", 2, `illegal mcast-ttl specified: "0"`},
	} {
		out, errOut, code := adm(t, "", strings.Fields(tc.args)...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("afvsadm %s: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}
