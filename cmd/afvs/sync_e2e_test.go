package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// syncConfig is the lab's rr service for a director with control socket
// socket and the given sync section.
func syncConfig(lab *testnet.Lab, socket, sync string) string {
	cfg := serviceConfig(lab, "rr", 1, 1, 1)
	cfg = strings.Replace(cfg, "control: {socket: "+lab.Socket+"}", "control: {socket: "+socket+"}", 1)
	return cfg + sync
}

// admAt runs the built afvsadm against the daemon at socket.
func admAt(t *testing.T, socket string, args ...string) string {
	t.Helper()
	_, bin := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AFVS_SOCKET="+socket)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil || e.Len() > 0 {
		t.Fatalf("afvsadm %s: %v: %s", strings.Join(args, " "), err, e.String())
	}
	return o.String()
}

// connLines is afvsadm -L -c -n without the header and the expire
// column: protocol, state, source, virtual and destination of each entry,
// sorted.
func connLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[2:] {
		f := strings.Fields(l)
		if len(f) == 6 {
			lines = append(lines, strings.Join([]string{f[0], f[2], f[3], f[4], f[5]}, " "))
		}
	}
	slices.Sort(lines)
	return lines
}

// startSecondDirector starts a second `afvs run` with config cfg and
// control socket socket in a namespace of its own on the lab's bridge,
// 198.18.0.3 on its eth0, and stops it when the test ends.
func startSecondDirector(t *testing.T, lab *testnet.Lab, socket, cfg string) (*testnet.Daemon, *testnet.NS) {
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
	if err := b.IP("addr", "add", "198.18.0.3/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(lab.Dir, "afvs2.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bd, err := testnet.StartDaemon(b, afvs, socket, "run", "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second director log:\n%s", bd.Log.String())
		}
		_ = bd.Stop(syscall.SIGTERM)
	})
	return bd, b
}

// metricsIn reads /metrics from the afvs of namespace ns, on its
// loopback. The socket is dialled inside Do, since http.Transport would
// dial on another thread, in another namespace.
func metricsIn(t *testing.T, ns *testnet.NS) string {
	t.Helper()
	var text string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9469", 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		text = string(b)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		return err
	})
	if err != nil {
		t.Fatalf("/metrics in %s: %v", ns.Name, err)
	}
	return text
}

// TestSyncTwoDaemons: two `afvs run` directors on one LAN, the first a
// sync master, the second a sync backup, both configured by their config
// files. Connections the master carries appear in the backup's
// `afvsadm -L -c` with the same state and real server, its real servers'
// ActiveConn counts match, and both list their daemons as ipvsadm does.
// When the client's route to the VIP moves to the backup, the backup
// carries every connection on to the same real server. Then the roles
// switch at run time with afvsadm, as a notify script switches them.
func TestSyncTwoDaemons(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	lab := newLab(t, testnet.LabOptions{NoDirector: true, Scheduler: "rr", Weights: []int{1, 1, 1}})
	writeLabConfig(t, lab, syncConfig(lab, lab.Socket, "sync: {master: {interface: eth0, syncid: 7}, flush_interval: 100ms}\n"))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	bSocket := filepath.Join(lab.Dir, "afvs2.sock")
	_, _ = startSecondDirector(t, lab, bSocket, syncConfig(lab, bSocket, "sync: {backup: {interface: eth0, syncid: 7}}\n"))
	if got, want := admAt(t, lab.Socket, "-L", "--daemon"), "master sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
		t.Errorf("master -L --daemon: %q, want %q", got, want)
	}
	if got, want := admAt(t, bSocket, "-L", "--daemon"), "backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
		t.Errorf("backup -L --daemon: %q, want %q", got, want)
	}

	const n = 12
	ka := startKeepAlive(t, lab, n)
	var m, bk []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = connLines(admAt(t, lab.Socket, "-L", "-c", "-n"))
		bk = connLines(admAt(t, bSocket, "-L", "-c", "-n"))
		if len(m) == n && slices.Equal(m, bk) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup's connections never matched the master's:\nmaster:\n%s\nbackup:\n%s", strings.Join(m, "\n"), strings.Join(bk, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, l := range bk {
		if !strings.HasPrefix(l, "TCP ESTABLISHED ") {
			t.Errorf("backup entry %q: want an established TCP connection", l)
		}
	}
	// ActiveConn per real server, as -L -n shows it, is the same.
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
	if mst.Sync.SentMessages == 0 || mst.Sync.SentEntries < n || bst.Sync.RecvMessages == 0 || bst.Sync.Installed < n {
		t.Errorf("sync counters: master sent %d messages / %d entries, backup received %d messages, installed %d",
			mst.Sync.SentMessages, mst.Sync.SentEntries, bst.Sync.RecvMessages, bst.Sync.Installed)
	}
	for reason, v := range bst.Sync.Drops {
		if v != 0 {
			t.Errorf("backup dropped %d as %s", v, reason)
		}
	}

	// Takeover: the client's route to the VIP moves to the backup, as a
	// VRRP failover moves the VIP. The backup forwards the synced
	// connections at once, to the same real servers (sloppy_tcp is off:
	// an unknown ACK would be dropped).
	if err := lab.Client.IP("route", "replace", lab.VIP.String()+"/32", "via", "198.18.0.3"); err != nil {
		t.Fatal(err)
	}
	ka.mu.Lock()
	reqs := ka.reqs
	ka.mu.Unlock()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ka.mu.Lock()
		done := ka.reqs-reqs >= 5*n
		ka.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the keep-alive connections stalled after the takeover")
		}
	}
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

	// The notify script's switch: the backup becomes master, the master
	// backup; both at run time, no reload.
	admAt(t, bSocket, "--stop-daemon", "backup")
	admAt(t, bSocket, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "7")
	admAt(t, lab.Socket, "--stop-daemon", "master")
	admAt(t, lab.Socket, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "7")
	if got := admAt(t, bSocket, "-L", "--daemon"); !strings.HasPrefix(got, "master sync daemon (mcast=eth0, syncid=7") {
		t.Errorf("after the switch the second director lists %q", got)
	}
	if got := admAt(t, lab.Socket, "-L", "--daemon"); !strings.HasPrefix(got, "backup sync daemon (mcast=eth0, syncid=7") {
		t.Errorf("after the switch the first director lists %q", got)
	}
}

// TestSyncBackupUnknownRealServer: the two directors' tables differ (the
// backup's config lacks the master's third real server). Every
// connection the master sends to that server is dropped by the backup,
// counted as unknown_dest in its status and metrics and named in a log
// line; the backup installs the others and keeps running.
func TestSyncBackupUnknownRealServer(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	lab := newLab(t, testnet.LabOptions{NoDirector: true, Scheduler: "rr", Weights: []int{1, 1, 1}})
	writeLabConfig(t, lab, syncConfig(lab, lab.Socket, "sync: {master: {interface: eth0, syncid: 7}, flush_interval: 100ms}\n"))
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	bSocket := filepath.Join(lab.Dir, "afvs2.sock")
	bCfg := strings.Replace(serviceConfig(lab, "rr", 1, 1, -1), "control: {socket: "+lab.Socket+"}", "control: {socket: "+bSocket+"}", 1)
	bd, bNS := startSecondDirector(t, lab, bSocket, bCfg+"sync: {backup: {interface: eth0, syncid: 7}}\n")
	missing := lab.RealAddrs[2].String() + ":" + fmt.Sprint(lab.Port)

	const n = 12
	ka := startKeepAlive(t, lab, n)
	defer ka.halt()
	var toMissing, others []string
	var bk []string
	var bst api.Status
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		toMissing, others = nil, nil
		for _, l := range connLines(admAt(t, lab.Socket, "-L", "-c", "-n")) {
			if strings.HasSuffix(l, " "+missing) {
				toMissing = append(toMissing, l)
			} else {
				others = append(others, l)
			}
		}
		bk = connLines(admAt(t, bSocket, "-L", "-c", "-n"))
		var err error
		if bst, err = api.NewClient(bSocket).Status(); err != nil {
			t.Fatalf("the backup's status: %v", err)
		}
		if len(toMissing)+len(others) == n && slices.Equal(bk, others) && bst.Sync.Drops["unknown_dest"] >= uint64(len(toMissing)) &&
			strings.Contains(bd.Log.String(), "via "+missing) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: the master's connections to %s: %d, to the others: %d; the backup holds %d (want the others'), dropped %d as unknown_dest; backup log:\n%s",
				missing, len(toMissing), len(others), len(bk), bst.Sync.Drops["unknown_dest"], bd.Log.String())
		}
	}
	if len(toMissing) == 0 || len(others) == 0 {
		t.Fatalf("rr put %d connections on %s and %d on the others; the test needs both", len(toMissing), missing, len(others))
	}
	for reason, v := range bst.Sync.Drops {
		if v != 0 && reason != "unknown_dest" {
			t.Errorf("the backup dropped %d as %s", v, reason)
		}
	}
	if bst.Sync.Installed < uint64(len(others)) {
		t.Errorf("the backup installed %d entries, want at least %d", bst.Sync.Installed, len(others))
	}
	log := bd.Log.String()
	if !strings.Contains(log, "sync backup: entries dropped") || !strings.Contains(log, "unknown_dest") {
		t.Errorf("the backup's log does not name the dropped entries:\n%s", log)
	}
	m := regexp.MustCompile(`(?m)^afvs_sync_drops_total\{reason="unknown_dest"\} (\d+)$`).FindStringSubmatch(metricsIn(t, bNS))
	if m == nil || m[1] == "0" {
		t.Errorf("the backup's metrics count no unknown_dest drop: %v", m)
	}
}
