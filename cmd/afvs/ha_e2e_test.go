package main

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// The HA pair's end-to-end tests: two directors running afvs and Debian's
// keepalived with the shipped deploy/keepalived files, a client holding
// long-lived HTTP keep-alive connections, and a SIGKILL of the master's
// afvs and keepalived.

const (
	haConns    = 50
	haInterval = 200 * time.Millisecond
	// haTimeout is how long a held connection waits for one answer: long
	// enough for TCP's retransmissions (200 ms, then 400 ms, ...) to reach
	// the new owner, so a connection that survives is never counted as
	// broken for being slow.
	haTimeout = 5 * time.Second
	// haNewConn is the bound: the VIP answers a new connection via
	// the backup within this long after the kill.
	haNewConn = time.Second
	// haCrashNewConn bounds the same when only afvs dies, which the issue
	// sets no bound for: keepalived's vrrp_script notices within its
	// one-second interval plus the time the check takes to start on a
	// busy machine, and the master then gives the address up at once.
	haCrashNewConn = 4 * time.Second
)

func newHALab(t *testing.T, o testnet.HAOptions) *testnet.HALab {
	t.Helper()
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute, testsupport.Keepalived)
	o.AFVS, o.AFVSADM = binaries(t)
	h, err := testnet.NewHALab(o)
	if err != nil {
		t.Fatal(err)
	}
	prefix := h.Net.Prefix
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range h.Directors {
				log := ""
				if dm := d.Daemon(); dm != nil {
					log = dm.Log.String()
				}
				t.Logf("director %s: afvs log:\n%s\nkeepalived log:\n%s\nnotify log:\n%s", d.Name, tail(log, 40), tail(d.KeepalivedLog(), 40), d.Notifications())
			}
		}
		if err := h.Close(); err != nil {
			t.Errorf("HA lab cleanup: %v", err)
		}
		if left := testnet.Leftovers(prefix); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	return h
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// haRun is one failover under load.
type haRun struct {
	f       testnet.Failover
	hold    *testnet.Holder
	settled time.Time // from here on every frame goes to the new owner
	deadHit int64     // frames to the VIP reaching the dead director after settled
}

// How A fails in failover.
const (
	killBoth  = iota // SIGKILL of A's afvs and keepalived
	cutLink          // A's link down at the switch
	crashAFVS        // SIGKILL of A's afvs alone
)

// failover holds haConns connections, checks that A owns the next hop and
// forwards them, makes A fail (how), and checks that B takes over and a
// new connection is answered within haNewConn (with crashAFVS, within
// haCrashNewConn). It then lets the held connections run for three
// seconds and checks that A carries nothing meanwhile. The holder keeps
// running.
func failover(t *testing.T, h *testnet.HALab, how int) *haRun {
	cut := how == cutLink
	t.Helper()
	a, b := h.Directors[0], h.Directors[1]
	if own, err := h.Owner(); err != nil || own != 0 {
		t.Fatalf("before the kill: owner %d, %v; want director A", own, err)
	}
	hold, err := h.Hold(haConns, haInterval, haTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Stop() })
	dead, err := h.CountVIPFrames(a.NS, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Stop()
	time.Sleep(time.Second)
	// While A's afvs runs, its XDP program takes the frames before the
	// packet socket could see them; B's sees none at all.
	if st, err := a.Control().Status(); err != nil || st.Steering["redirected"] < haConns {
		t.Fatalf("master A redirected %d frames (%v) in a second of %d connections", st.Steering["redirected"], err, haConns)
	}
	st, err := b.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Steering["redirected"] != 0 {
		t.Errorf("backup B redirected %d frames before the kill: a backup must forward nothing", st.Steering["redirected"])
	}
	if h.Opt.Sync {
		waitSynced(t, b, haConns)
	}
	r := &haRun{hold: hold}
	bound := haNewConn
	switch how {
	case cutLink:
		r.f, err = h.CutOwner(3 * time.Second)
	case crashAFVS:
		bound = haCrashNewConn
		r.f, err = h.CrashOwnerAFVS(6 * time.Second)
	default:
		r.f, err = h.KillOwner(3 * time.Second)
	}
	if err != nil {
		t.Fatalf("failover: %v", err)
	}
	if r.f.Killed != a || r.f.Took != b {
		t.Fatalf("killed %s, %s took over; want A killed and B taking over", r.f.Killed.Name, r.f.Took.Name)
	}
	t.Logf("failover: B holds %s %v after A failed; a new connection was answered (by %s) after %v; A's processes had exited after %v",
		h.NextHop, r.f.Takeover.Round(time.Millisecond), r.f.Answer, r.f.Gap.Round(time.Millisecond), r.f.Exited.Round(time.Millisecond))
	if r.f.Gap > bound {
		t.Errorf("the VIP answered a new connection %v after A failed; want within %v", r.f.Gap, bound)
	}
	// The client's retransmissions sent before the gratuitous ARP went
	// to A; give those in flight half a second to land.
	time.Sleep(500 * time.Millisecond)
	r.settled = time.Now()
	// Until the gratuitous ARP, the client's frames still went to A. A
	// killed A's kernel shows them to the count once afvs has exited (its
	// XDP program redirects them to its dead sockets until then, and that
	// exit can take as long as the takeover on a busy machine), so how
	// many it saw is logged, not checked; that the count sees frames at
	// all is checked below, with a frame sent to A's MAC. A cut-off A
	// receives nothing, and the switch, which forgot A's MAC with its
	// port, floods them to B.
	var aRedirected uint64
	if cut {
		st, err := a.Control().Status()
		if err != nil {
			t.Fatalf("the cut-off director A's afvs: %v", err)
		}
		aRedirected = st.Steering["redirected"]
	}
	time.Sleep(3 * time.Second)
	// The count's reader may lag on a busy machine: the frames are
	// counted by the kernel's time of arrival, once it has read every
	// frame that arrived by now.
	if !dead.CatchUp(5 * time.Second) {
		t.Errorf("frames to the VIP kept arriving at the failed director A: the count's socket was never empty for 100 ms within 5s")
	}
	seen := dead.Count()
	r.deadHit = dead.Since(r.settled)
	t.Logf("A's kernel saw %d frames to the VIP before the takeover settled", seen-r.deadHit)
	if r.deadHit != 0 {
		t.Errorf("the failed director A still received %d frames to the VIP in the 3s after the takeover settled", r.deadHit)
	}
	if !cut {
		// The count must see a frame to the VIP that does reach A, and
		// date it after it was sent, or its zero above proves nothing.
		sentAt := time.Now()
		sendToVIPVia(t, h, a)
		for deadline := time.Now().Add(5 * time.Second); dead.Count() == seen; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a frame to the VIP sent to the dead director A's MAC was not counted on A's eth0 within 5s: the count cannot see traffic")
			}
		}
		if got := dead.Since(sentAt); got != 1 {
			t.Errorf("of the frames counted on A's eth0, %d arrived after the probe frame was sent; want the probe alone", got)
		}
	}
	if cut {
		st, err := a.Control().Status()
		if err != nil {
			t.Fatalf("the cut-off director A's afvs: %v", err)
		}
		if st.Steering["redirected"] != aRedirected {
			t.Errorf("the cut-off director A redirected %d more frames after the takeover settled", st.Steering["redirected"]-aRedirected)
		}
	}
	st, err = b.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if cut && st.Steering["other_mac"] == 0 {
		t.Errorf("B saw no frame for A's MAC: the switch should have flooded them to B once A's port went down (steering %v)", st.Steering)
	}
	if st.Steering["redirected"] == 0 || st.TX == 0 {
		t.Errorf("director B forwarded nothing after the takeover: steering %v, tx %d", st.Steering, st.TX)
	}
	return r
}

// sendToVIPVia sends one TCP SYN to the VIP's port from the client's
// eth0, addressed to director d's MAC whoever holds the next hop, through
// a packet socket (the client's own stack never sees it, so nothing
// answers it there).
func sendToVIPVia(t *testing.T, h *testnet.HALab, d *testnet.HADirector) {
	t.Helper()
	mac := func(ns *testnet.NS) net.HardwareAddr {
		var hw net.HardwareAddr
		if err := ns.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err == nil {
				hw = ifi.HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatalf("eth0 of %s: %v", ns.Name, err)
		}
		return hw
	}
	src, dst := mac(h.Client), mac(d.NS)
	frame := testsupport.Build(t,
		&layers.Ethernet{SrcMAC: src, DstMAC: dst},
		&layers.IPv4{TTL: 64, SrcIP: h.ClientAddr.AsSlice(), DstIP: h.VIP.AsSlice()},
		&layers.TCP{SrcPort: 9, DstPort: layers.TCPPort(h.Port), SYN: true, Seq: 1, Window: 1024})
	err := h.Client.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], dst)
		return unix.Sendto(fd, frame, 0, to)
	})
	if err != nil {
		t.Fatalf("send a frame to director %s's MAC from the client: %v", d.Name, err)
	}
}

// waitSynced waits until d's connection table holds at least n
// ESTABLISHED connections to the VIP, which only the sync daemon puts
// there on a director that forwards nothing.
func waitSynced(t *testing.T, d *testnet.HADirector, n int) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		conns, err := d.Control().Conns()
		if err != nil {
			t.Fatal(err)
		}
		got = 0
		for _, c := range conns {
			if !c.Template && c.State == "ESTABLISHED" && strings.HasPrefix(c.Virtual, "198.19.0.1:") {
				got++
			}
		}
		if got >= n {
			return
		}
	}
	st, _ := d.Control().Status()
	t.Fatalf("director %s holds %d established connections to the VIP after 15s, want %d from the sync daemon; sync status %+v", d.Name, got, n, st.Sync)
}

// survived checks that every held connection got answers after settled,
// from the real server it started with, with no failure.
func (r *haRun) survived(t *testing.T, conns []testnet.HeldConn) {
	t.Helper()
	s := testnet.Summarize(conns, r.settled)
	if s.Survived != haConns || s.Failed != 0 || s.Switched != 0 {
		t.Errorf("of %d connections %d survived, %d failed (%d with a reset), %d answered by another real server; want all to survive:\n%s",
			s.Total, s.Survived, s.Failed, s.Resets, s.Switched, strings.Join(s.FirstErrors, "\n"))
	}
}

// TestHAFailoverConsistentScheduler: with sync off, mh on both directors
// and sloppy_tcp on, the backup has never heard of the connections, yet
// every one survives the master's SIGKILL: B creates an entry from the
// first non-SYN packet and mh sends it to the same real server.
func TestHAFailoverConsistentScheduler(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "mh", SloppyTCP: true})
	r := failover(t, h, killBoth)
	r.survived(t, r.hold.Stop())
	if n := h.Directors[1].Notifications(); !strings.Contains(n, "AFVS is MASTER") || !strings.Contains(n, "connection sync is off") {
		t.Errorf("B's notify script did not log its MASTER state with sync off:\n%s", n)
	}
}

// TestHAFailoverWithoutSyncBreaks is the proof that the failover test can
// fail: with sync off, rr on both directors and sloppy_tcp off, B drops
// every packet of the connections it never saw open (no_connection), and
// all of them break, while new connections work through B.
func TestHAFailoverWithoutSyncBreaks(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "rr"})
	r := failover(t, h, killBoth)
	s := testnet.Summarize(r.hold.Stop(), r.settled)
	if s.Failed != haConns || s.Survived != 0 {
		t.Errorf("without sync and with rr, %d of %d connections survived and %d failed; want all to break", s.Survived, s.Total, s.Failed)
	}
	st, err := h.Directors[1].Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Drops["no_connection"] == 0 {
		t.Errorf("B dropped no packets as no_connection: drops %v", st.Drops)
	}
}

// TestHAFailoverLinkDown: the master's link goes down at the switch while
// its afvs and keepalived run on. B takes over within the same bounds,
// the frames the switch floods to B for A's MAC meanwhile are passed to
// B's kernel, not forwarded, and with mh and sloppy_tcp every connection
// survives.
func TestHAFailoverLinkDown(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "mh", SloppyTCP: true})
	r := failover(t, h, cutLink)
	r.survived(t, r.hold.Stop())
	if n := h.Directors[0].Notifications(); !strings.Contains(n, "AFVS is FAULT") {
		t.Errorf("A's notify script did not log FAULT when its link went down:\n%s", n)
	}
}

// TestHAFailoverWithSync: with connection sync on (the notify script runs
// the master daemon on A and the backup on B), rr on both directors and
// sloppy_tcp off, B learns every connection from A's sync messages, and
// all of them survive A's SIGKILL through their own real server. Without
// sync the same set-up breaks every one (TestHAFailoverWithoutSyncBreaks).
func TestHAFailoverWithSync(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "rr", Sync: true})
	r := failover(t, h, killBoth)
	r.survived(t, r.hold.Stop())
	b := h.Directors[1]
	if err := b.WaitSyncRole(0, "master"); err != nil {
		t.Errorf("B's notify script did not switch it to the master sync role: %v", err)
	}
	st, err := b.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sync.Installed < haConns || st.Drops["no_connection"] != 0 {
		t.Errorf("B installed %d synced entries and dropped %d packets as no_connection; want at least %d and none", st.Sync.Installed, st.Drops["no_connection"], haConns)
	}
	checkSyncRoles(t, b, 0, "master")
}

// TestHAFailoverWithSyncIPv6Group is TestHAFailoverWithSync with the
// sync daemons on an IPv6 multicast group: the shipped notify script
// passes "--mcast-group ff02::8848" (its SYNC_OPTIONS) to afvsadm, so
// the IPv4 services' connections travel in IPv6 datagrams from the
// link-local addresses of the directors' eth0, and all of them survive
// A's SIGKILL.
func TestHAFailoverWithSyncIPv6Group(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "rr", Sync: true, SyncOptions: "--mcast-group ff02::8848"})
	r := failover(t, h, killBoth)
	r.survived(t, r.hold.Stop())
	b := h.Directors[1]
	if err := b.WaitSyncRole(0, "master"); err != nil {
		t.Errorf("B's notify script did not switch it to the master sync role: %v", err)
	}
	st, err := b.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sync.Installed < haConns || st.Drops["no_connection"] != 0 {
		t.Errorf("B installed %d synced entries and dropped %d packets as no_connection; want at least %d and none", st.Sync.Installed, st.Drops["no_connection"], haConns)
	}
	checkSyncRoles(t, b, 0, "master")
	if len(st.Sync.Daemons) == 1 && (st.Sync.Daemons[0].Group != "ff02::8848" || st.Sync.Daemons[0].MaxLen != 1452) {
		t.Errorf("B's sync daemon %+v: want group ff02::8848 and maxlen 1452", st.Sync.Daemons[0])
	}
}

// checkSyncRoles checks that d runs exactly the sync daemon of role, and
// that its notify script stopped the other one after mark (it found it in
// afvsadm -L --daemon's listing).
func checkSyncRoles(t *testing.T, d *testnet.HADirector, mark int, role string) {
	t.Helper()
	other := map[string]string{"master": "backup", "backup": "master"}[role]
	if err := d.WaitNotify(mark, "afvsadm --stop-daemon "+other+": ok", 15*time.Second); err != nil {
		t.Error(err)
	}
	st, err := d.Control().Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sync.Daemons) != 1 || st.Sync.Daemons[0].State != role || st.Sync.Daemons[0].Interface != "eth0" || st.Sync.Daemons[0].SyncID != 51 {
		t.Errorf("director %s runs sync daemons %+v; want the %s one alone on eth0 with syncid 51", d.Name, st.Sync.Daemons, role)
	}
}

// TestHAOldMasterRejoins: after a failover with sync on, the old master A
// comes back (afvs and keepalived restarted). With nopreempt it rejoins
// as backup, its notify script starts the backup sync daemon, it receives
// B's connections, and nothing established breaks; then B is killed in
// turn and A, from what it received, carries every connection on.
func TestHAOldMasterRejoins(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "rr", Sync: true})
	a, b := h.Directors[0], h.Directors[1]
	r := failover(t, h, killBoth)
	mark := a.NotifyMark()
	if err := a.StartAFVS(); err != nil {
		t.Fatal(err)
	}
	if err := a.StartKeepalived(); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitNotify(mark, "AFVS is BACKUP", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitSyncRole(mark, "backup"); err != nil {
		t.Fatal(err)
	}
	// Several of B's advert intervals: A must not take the address back.
	time.Sleep(time.Second)
	if own, err := h.Owner(); err != nil || own != 1 {
		t.Fatalf("after A rejoined: owner %d, %v; want B to keep the address (nopreempt)", own, err)
	}
	if strings.Contains(a.Notifications()[mark:], "AFVS is MASTER") {
		t.Errorf("the returning A became master:\n%s", a.Notifications()[mark:])
	}
	waitSynced(t, a, haConns)
	if s := testnet.Summarize(r.hold.Conns(), time.Time{}); s.Failed != 0 || s.Switched != 0 {
		t.Errorf("A's return broke connections: %d failed, %d switched:\n%s", s.Failed, s.Switched, strings.Join(s.FirstErrors, "\n"))
	}
	mark = a.NotifyMark()
	f, err := h.KillOwner(3 * time.Second)
	if err != nil {
		t.Fatalf("second failover: %v", err)
	}
	if f.Killed != b || f.Took != a || f.Gap > haNewConn {
		t.Errorf("second failover: %s killed, %s took over, new connection answered after %v; want B, A, within %v", f.Killed.Name, f.Took.Name, f.Gap, haNewConn)
	}
	settled := time.Now().Add(500 * time.Millisecond)
	time.Sleep(3 * time.Second)
	r.settled = settled
	r.survived(t, r.hold.Stop())
	checkSyncRoles(t, a, mark, "master")
}

// TestHAFailoverAFVSCrash: only the master's afvs dies; its keepalived
// runs on. The shipped vrrp_script (afvs-check.sh) finds afvs's control
// socket dead, A goes to FAULT and gives the address up, B takes over,
// and with sync every connection survives.
func TestHAFailoverAFVSCrash(t *testing.T) {
	h := newHALab(t, testnet.HAOptions{Scheduler: "rr", Sync: true})
	a := h.Directors[0]
	mark := a.NotifyMark()
	r := failover(t, h, crashAFVS)
	r.survived(t, r.hold.Stop())
	if err := a.WaitNotify(mark, "AFVS is FAULT", 15*time.Second); err != nil {
		t.Error(err)
	}
	if own, err := a.Owns(); err != nil || own {
		t.Errorf("A, in FAULT, still holds the address: %v, %v", own, err)
	}
}
