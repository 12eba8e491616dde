package main

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
)

// TestSyncNATTakeover: an HA pair with a VS/NAT service. Two `afvs run`
// directors on the NAT lab, the first a sync master, the second its
// backup (its own 198.18.2.3 among the real servers); the real servers'
// gateway, 198.18.2.1, is a floating address, as keepalived would move
// it. Long-lived HTTP connections through the master appear on the
// backup. Then the takeover happens in two steps, as two VRRP addresses
// may move at different moments: first the gateway moves to the backup,
// so the real servers' replies reach the backup while the client's
// requests still reach the master, and the backup, which has seen no
// packet of these connections, must rewrite and deliver the replies from
// their synced entries alone (it files their replies by its route to the
// client); then the client's route to the VIP moves too. Every
// connection goes on through its real server with no error; the backup
// drops nothing as reply_no_connection or no_connection.
func TestSyncNATTakeover(t *testing.T) { syncNATTakeover(t, "") }

// TestSyncNATTakeoverSYNProxy is TestSyncNATTakeover with the SYN proxy on
// both directors (defense.syn_proxy): every connection was opened by the
// master's proxy, so the real server's sequence numbers differ from the
// cookie the client saw, and the backup must shift both directions by
// the difference the master's sync entries carry (IPVS_OPT_SEQ_DATA)
// for the connections to go on.
func TestSyncNATTakeoverSYNProxy(t *testing.T) {
	syncNATTakeover(t, "defense: {syn_proxy: true}\n")
}

// syncNATTakeover runs TestSyncNATTakeover with extra added to both
// directors' configs.
func syncNATTakeover(t *testing.T, extra string) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", NoDirector: true, Scheduler: "rr", Weights: []int{1, 1, 1}})
	cfg := func(socket, sync string) string {
		return strings.Replace(lab.Config(), "socket: "+lab.Socket, "socket: "+socket, 1) + extra + sync
	}
	// The master's own address among the real servers, so that it keeps
	// its route to them when the gateway address leaves (and the kernel
	// keeps a secondary address when the primary goes).
	for _, k := range []string{"net.ipv4.conf.all.promote_secondaries", "net.ipv4.conf.eth0.promote_secondaries"} {
		if err := lab.Director.Sysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := lab.Director.IP("addr", "add", "198.18.2.2/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	writeLabConfig(t, lab, cfg(lab.Socket, "sync: {master: {interface: eth0, syncid: 8}, flush_interval: 100ms}\n"))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	bSocket, b := secondDirector(t, lab, func(s string) string { return cfg(s, "sync: {backup: {interface: eth0, syncid: 8}}\n") },
		"198.18.0.3/24", "198.18.2.3/24")

	const n = 12
	ka := startKeepAlive(t, lab, n)
	for _, l := range syncedLists(t, lab.Socket, bSocket, n) {
		if !strings.HasPrefix(l, "TCP ESTABLISHED 198.18.0.10:") || !strings.Contains(l, " 198.18.2.1") {
			t.Errorf("backup entry %q: want an established connection to a real server", l)
		}
	}

	// The gateway moves: the replies reach the backup, the requests still
	// the master.
	if err := lab.Director.IP("addr", "del", "198.18.2.1/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := b.IP("addr", "add", "198.18.2.1/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, rs := range lab.Reals {
		if err := rs.IP("neigh", "flush", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	bst0, err := api.NewClient(bSocket).Status()
	if err != nil {
		t.Fatal(err)
	}
	waitRequests(t, ka, 5*n, "with the replies through the backup")
	bst, err := api.NewClient(bSocket).Status()
	if err != nil {
		t.Fatal(err)
	}
	if bst.TX-bst0.TX < 5*n {
		t.Errorf("the backup forwarded %d frames while it carried the replies, want >= %d", bst.TX-bst0.TX, 5*n)
	}

	// The client's route moves too: the backup carries both directions.
	if err := lab.Client.IP("route", "replace", lab.VIP.String()+"/32", "via", "198.18.0.3"); err != nil {
		t.Fatal(err)
	}
	waitRequests(t, ka, 5*n, "after the takeover")
	ka.halt()
	if len(ka.errs) > 0 || len(ka.moved) > 0 {
		t.Errorf("errors %v, moved %v", ka.errs, ka.moved)
	}
	bst, err = api.NewClient(bSocket).Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"reply_no_connection", "no_connection"} {
		if bst.Drops[r] != 0 {
			t.Errorf("the backup dropped %d frames as %s", bst.Drops[r], r)
		}
	}
	if extra != "" {
		// The proxy opened every connection on the master, so each one
		// went on through the backup only by the synced shift.
		mst, err := lab.Control().Status()
		if err != nil {
			t.Fatal(err)
		}
		if mst.SYNProxy.Established < n {
			t.Errorf("the master's SYN proxy established %d connections, want the %d held", mst.SYNProxy.Established, n)
		}
	}
}
