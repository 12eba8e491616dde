package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
)

// TestSyncNAT6Takeover is TestSyncNATTakeover for an IPv6 VS/NAT service
// on the dual-stack NAT lab (every address in 2001:2::/48): the master
// and its backup (2001:2::3, and its own 2001:2:0:3::3 among the real
// servers) both get the service from afvsadm -6; the real servers'
// IPv6 gateway, 2001:2:0:3::1, is the floating address. Long-lived HTTP
// connections through the master appear on the backup. Then the gateway
// moves to the backup, so the real servers' replies reach it while the
// client's requests still reach the master, and the backup must rewrite
// and deliver the replies from their synced entries alone (filed by its
// route to the client); then the client's route to the VIP moves too.
// Every connection goes on through its real server with no error; the
// backup drops nothing as reply_no_connection or no_connection.
func TestSyncNAT6Takeover(t *testing.T) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", IPv6: true, NoDirector: true, Scheduler: "rr", Weights: []int{1, 1, 1}})
	cfg := func(socket, sync string) string {
		return strings.Replace(lab.Config(), "socket: "+lab.Socket, "socket: "+socket, 1) + sync
	}
	// The master's own address among the real servers, so that it keeps
	// its route to them when the gateway address leaves.
	if err := lab.Director.IP("-6", "addr", "add", "2001:2:0:3::2/64", "dev", "eth0", "nodad"); err != nil {
		t.Fatal(err)
	}
	writeLabConfig(t, lab, cfg(lab.Socket, "sync: {master: {interface: eth0, syncid: 9}, flush_interval: 100ms}\n"))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	bSocket, b := secondDirector(t, lab, func(s string) string { return cfg(s, "sync: {backup: {interface: eth0, syncid: 9}}\n") },
		"198.18.0.3/24", "2001:2::3/64", "2001:2:0:3::3/64")
	vip := netip.AddrPortFrom(testnet.VIP6, lab.Port)
	for _, socket := range []string{lab.Socket, bSocket} {
		admAt(t, socket, "-A", "-t", vip.String(), "-s", "rr")
		for _, a := range lab.RealAddrs6 {
			admAt(t, socket, "-a", "-t", vip.String(), "-r", netip.AddrPortFrom(a, testnet.NATPort).String(), "-m")
		}
	}

	const n = 12
	ka := startKeepAliveTo(t, lab, vip, n)
	for _, l := range syncedLists(t, lab.Socket, bSocket, n) {
		if !strings.HasPrefix(l, "TCP ESTABLISHED [2001:2::10]:") || !strings.Contains(l, fmt.Sprintf(" [%s]:80 [2001:2:0:3::1", testnet.VIP6)) {
			t.Errorf("backup entry %q: want an established IPv6 connection to a real server", l)
		}
	}

	// The gateway moves: the replies reach the backup, the requests still
	// the master.
	if err := lab.Director.IP("-6", "addr", "del", "2001:2:0:3::1/64", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := b.IP("-6", "addr", "add", "2001:2:0:3::1/64", "dev", "eth0", "nodad"); err != nil {
		t.Fatal(err)
	}
	for _, rs := range lab.Reals {
		if err := rs.IP("-6", "neigh", "flush", "dev", "eth0"); err != nil {
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
	if err := lab.Client.IP("-6", "route", "replace", testnet.VIP6.String()+"/128", "via", "2001:2::3"); err != nil {
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
}
