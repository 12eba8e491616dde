package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
)

// secondDirector adds a director namespace "director2" to lab's bridge
// br0 (port pd2) with eth0 at addrs, and runs `afvs run` there on config
// text cfg, with its own control socket. It returns the socket and the
// namespace.
func secondDirector(t *testing.T, lab *testnet.Lab, cfg func(socket string) string, addrs ...string) (string, *testnet.NS) {
	t.Helper()
	afvs, _ := binaries(t)
	b, err := lab.Net.NS("director2")
	if err != nil {
		t.Fatal(err)
	}
	if err := testnet.Veth(lab.Switch, "pd2", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Switch.IP("link", "set", "pd2", "master", "br0"); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		args := []string{"addr", "add", a, "dev", "eth0"}
		if strings.Contains(a, ":") {
			args = append([]string{"-6"}, append(args, "nodad")...)
		}
		if err := b.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	socket := filepath.Join(lab.Dir, "afvs2.sock")
	config := filepath.Join(lab.Dir, "afvs2.yaml")
	if err := os.WriteFile(config, []byte(cfg(socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	bd, err := testnet.StartDaemon(b, afvs, socket, "run", "--config", config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second director log:\n%s", bd.Log.String())
		}
		_ = bd.Stop(syscall.SIGTERM)
	})
	return socket, b
}

// syncedLists waits until the backup's `afvsadm -L -c -n` lists the same n
// connections as the master's, and returns them.
func syncedLists(t *testing.T, master, backup string, n int) []string {
	t.Helper()
	var m, bk []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m = connLines(admAt(t, master, "-L", "-c", "-n"))
		bk = connLines(admAt(t, backup, "-L", "-c", "-n"))
		if len(m) == n && slices.Equal(m, bk) {
			return bk
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup's connections never matched the master's:\nmaster:\n%s\nbackup:\n%s", strings.Join(m, "\n"), strings.Join(bk, "\n"))
		}
	}
}

// waitRequests waits until ka has answered at least more requests than
// it had when called.
func waitRequests(t *testing.T, ka *keepAlive, more int, what string) {
	t.Helper()
	ka.mu.Lock()
	reqs := ka.reqs
	ka.mu.Unlock()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ka.mu.Lock()
		done, errs := ka.reqs-reqs >= more, len(ka.errs)
		ka.mu.Unlock()
		if done {
			return
		}
		if errs > 0 || time.Now().After(deadline) {
			ka.mu.Lock()
			defer ka.mu.Unlock()
			t.Fatalf("%s: %d of %d requests answered; errors %v", what, ka.reqs-reqs, more, ka.errs)
		}
	}
}

// TestSyncIPv6Takeover: two `afvs run` directors on the dual-stack lab,
// the first a sync master, the second its backup, both with the same
// IPv6 VS/DR service (added with afvsadm -6). Long-lived HTTP connections
// to the IPv6 VIP appear in the backup's `afvsadm -L -c -n` as in the
// master's, with the same ActiveConn per real server. When the client's
// route to the VIP moves to the backup (a takeover), every connection
// goes on through the same real server, with no error and no
// no_connection drop on the backup (sloppy_tcp is off).
func TestSyncIPv6Takeover(t *testing.T) {
	testSyncIPv6Takeover(t, "")
}

// syncGroup6 is TestSyncIPv6TakeoverOverIPv6Group's sync group: link-local
// scope, so sync traffic stays on the directors' LAN.
const syncGroup6 = "ff02::8848"

// TestSyncIPv6TakeoverOverIPv6Group is TestSyncIPv6Takeover with the sync
// daemons on an IPv6 multicast group (the kernel's mcast_af AF_INET6): the
// master started by `afvsadm --start-daemon master --mcast-group
// ff02::8848`, the backup by the config's sync.backup.group. Both list
// the group as ipvsadm 1.31 would, with maxlen 1500 less the 48 bytes of
// IPv6 and UDP headers, and every connection survives the takeover.
func TestSyncIPv6TakeoverOverIPv6Group(t *testing.T) {
	testSyncIPv6Takeover(t, syncGroup6)
}

// testSyncIPv6Takeover runs the takeover with the sync daemons on group,
// or on the default IPv4 group when group is "".
func testSyncIPv6Takeover(t *testing.T, group string) {
	lab := newLab(t, testnet.LabOptions{Mode: "dr", IPv6: true, NoDirector: true, Scheduler: "rr", Weights: []int{1, 1, 1}})
	cfg := func(socket, sync string) string {
		return strings.Replace(lab.Config(), "socket: "+lab.Socket, "socket: "+socket, 1) + sync
	}
	masterSync, backupSync := "sync: {master: {interface: eth0, syncid: 6}, flush_interval: 100ms}\n", "sync: {backup: {interface: eth0, syncid: 6}}\n"
	if group != "" {
		masterSync = "sync: {flush_interval: 100ms}\n"
		backupSync = "sync: {backup: {interface: eth0, syncid: 6, group: \"" + group + "\"}}\n"
	}
	writeLabConfig(t, lab, cfg(lab.Socket, masterSync))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	bSocket, _ := secondDirector(t, lab, func(s string) string { return cfg(s, backupSync) },
		"198.18.0.3/24", "2001:2::3/64")
	if group != "" {
		admAt(t, lab.Socket, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "6", "--mcast-group", group)
		for socket, want := range map[string]string{
			lab.Socket: "master sync daemon (mcast=eth0, syncid=6, maxlen=1452, group=" + group + ", port=8848, ttl=1)\n",
			bSocket:    "backup sync daemon (mcast=eth0, syncid=6, maxlen=1452, group=" + group + ", port=8848, ttl=1)\n",
		} {
			if got := admAt(t, socket, "-L", "--daemon"); got != want {
				t.Errorf("-L --daemon printed %q, want %q", got, want)
			}
		}
	}
	vip := netip.AddrPortFrom(testnet.VIP6, lab.Port)
	for _, socket := range []string{lab.Socket, bSocket} {
		admAt(t, socket, "-A", "-t", vip.String(), "-s", "rr")
		for _, a := range lab.RealAddrs6 {
			admAt(t, socket, "-a", "-t", vip.String(), "-r", netip.AddrPortFrom(a, 80).String(), "-g")
		}
	}

	const n = 12
	ka := startKeepAliveTo(t, lab, vip, n)
	bk := syncedLists(t, lab.Socket, bSocket, n)
	for _, l := range bk {
		if !strings.HasPrefix(l, "TCP ESTABLISHED [2001:2::10]:") || !strings.Contains(l, " ["+testnet.VIP6.String()+"]:80 [2001:2::") {
			t.Errorf("backup entry %q: want an established IPv6 TCP connection from the client to the VIP", l)
		}
	}
	if ml, bl := admAt(t, lab.Socket, "-L", "-n"), admAt(t, bSocket, "-L", "-n"); ml != bl {
		t.Errorf("-L -n differs:\nmaster:\n%s\nbackup:\n%s", ml, bl)
	}
	mst, err := lab.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	bst, err := api.NewClient(bSocket).Status()
	if err != nil {
		t.Fatal(err)
	}
	if mst.Sync.SentEntries < n || bst.Sync.Installed < n {
		t.Errorf("sync counters: master sent %d entries, backup installed %d; want >= %d", mst.Sync.SentEntries, bst.Sync.Installed, n)
	}
	for reason, v := range mst.Sync.Drops {
		if v != 0 {
			t.Errorf("master counted %d as %s", v, reason)
		}
	}
	for reason, v := range bst.Sync.Drops {
		if v != 0 {
			t.Errorf("backup dropped %d as %s", v, reason)
		}
	}

	// Takeover: the client's route to the VIP moves to the backup.
	if err := lab.Client.IP("-6", "route", "replace", testnet.VIP6.String()+"/128", "via", "2001:2::3"); err != nil {
		t.Fatal(err)
	}
	waitRequests(t, ka, 5*n, "after the takeover")
	ka.halt()
	if len(ka.errs) > 0 || len(ka.moved) > 0 {
		t.Errorf("after the takeover: errors %v, moved %v", ka.errs, ka.moved)
	}
	bst, err = api.NewClient(bSocket).Status()
	if err != nil {
		t.Fatal(err)
	}
	if bst.TX < 5*n || bst.Drops["no_connection"] != 0 {
		t.Errorf("backup forwarded %d frames, dropped %d as no_connection; want >= %d and 0", bst.TX, bst.Drops["no_connection"], 5*n)
	}
}
