package syncd

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
)

// fakeHost stands in for the director: StartSync hands out queues the
// test pushes into as a worker would, InstallSynced records what a
// backup installs, and SyncSeq runs seq.
type fakeHost struct {
	mu        sync.Mutex
	queues    []*ipvssync.Queue
	stopped   int
	installed []ipvssync.Conn
	drop      func(c *ipvssync.Conn) dataplane.SyncDrop
	seq       func(c *ipvssync.Conn) // SyncSeq, when set
}

func (h *fakeHost) SyncSeq(c *ipvssync.Conn) {
	if h.seq != nil {
		h.seq(c)
	}
}

func (h *fakeHost) StartSync(_ ipvssync.Settings, capacity int) ([]*ipvssync.Queue, error) {
	q, err := ipvssync.NewQueue(capacity)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queues = []*ipvssync.Queue{q}
	return h.queues, nil
}

func (h *fakeHost) SetSyncSettings(ipvssync.Settings) {}

func (h *fakeHost) StopSync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped++
}

func (h *fakeHost) InstallSynced(c *ipvssync.Conn, _ int) (conntrack.SyncResult, dataplane.SyncDrop) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.drop != nil {
		if r := h.drop(c); r != dataplane.SyncOK {
			return 0, r
		}
	}
	h.installed = append(h.installed, *c)
	return conntrack.SyncInserted, dataplane.SyncOK
}

func (h *fakeHost) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.installed)
}

// pair is two namespaces joined by a veth, master side 198.18.77.1 and
// backup side 198.18.77.2, with a third namespace on a second interface
// of the backup's (198.18.78.0/24) that is not the sync interface.
type pair struct {
	a, b, c *testnet.NS
}

func newPair(t *testing.T) *pair {
	t.Helper()
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	n := testnet.New()
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("removing namespaces: %v", err)
		}
	})
	p := &pair{}
	var err error
	for _, x := range []struct {
		ns   **testnet.NS
		name string
	}{{&p.a, "sa"}, {&p.b, "sb"}, {&p.c, "sc"}} {
		if *x.ns, err = n.NS(x.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := testnet.Veth(p.a, "synca", p.b, "syncb"); err != nil {
		t.Fatal(err)
	}
	if err := testnet.Veth(p.c, "otherc", p.b, "otherb"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns         *testnet.NS
		dev, addr  string
		multicastR bool
	}{{p.a, "synca", "198.18.77.1/24", true}, {p.b, "syncb", "198.18.77.2/24", false}, {p.c, "otherc", "198.18.78.1/24", true}, {p.b, "otherb", "198.18.78.2/24", false}} {
		if err := c.ns.IP("addr", "add", c.addr, "dev", c.dev); err != nil {
			t.Fatal(err)
		}
		if err := c.ns.IP("link", "set", c.dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	// IPv6 for sync over an IPv6 group: global addresses without
	// duplicate address detection, so a master has a source address
	// for the group's scope at once (the link-local ones may still be
	// tentative).
	for _, c := range []struct {
		ns        *testnet.NS
		dev, addr string
	}{{p.a, "synca", "2001:2:77::1/64"}, {p.b, "syncb", "2001:2:77::2/64"}, {p.c, "otherc", "2001:2:78::1/64"}, {p.b, "otherb", "2001:2:78::2/64"}} {
		if err := c.ns.IP("-6", "addr", "add", c.addr, "dev", c.dev, "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// group6 is the IPv6 sync group of the tests: link-local scope, so it
// never leaves the sync link.
var group6 = netip.MustParseAddr("ff02::8848")

// in runs fn in ns's network namespace (sockets made there stay there).
func in(t *testing.T, ns *testnet.NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func record(i int) ipvssync.Record {
	c := ipvssync.Conn{
		Protocol: ipvssync.ProtoTCP, Flags: ipvssync.FlagDRoute, State: ipvssync.TCPEstablished,
		CPort: uint16(10000 + i), VPort: 80, DPort: 80, Timeout: 900,
		CAddr: netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), VAddr: netip.MustParseAddr("198.19.0.1"), DAddr: netip.MustParseAddr("198.18.0.11"),
	}
	var r ipvssync.Record
	r.Set(&c)
	return r
}

// TestMasterToBackup: records a worker queues reach the backup in
// another namespace, packed into messages no longer than sync-maxlen,
// in order, each entry intact; the counters agree on both sides. It runs
// over the default IPv4 group and over an IPv6 one, where a backup's
// maximum length is the MTU less the 48 bytes of IPv6 and UDP headers.
func TestMasterToBackup(t *testing.T) {
	for _, tc := range []struct {
		name       string
		group      netip.Addr // invalid: the default
		wantGroup  netip.Addr
		backupMax  uint16
		masterDflt uint16
	}{
		{"IPv4", netip.Addr{}, ipvssync.DefaultGroup, 1472, 1472},
		{"IPv6", group6, group6, 1452, 1452},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testMasterToBackup(t, tc.group, tc.wantGroup, tc.backupMax, tc.masterDflt)
		})
	}
}

func testMasterToBackup(t *testing.T, group, wantGroup netip.Addr, backupMax, masterDflt uint16) {
	p := newPair(t)
	mh, bh := &fakeHost{}, &fakeHost{}
	master := New(mh, Options{FlushAfter: 50 * time.Millisecond})
	backup := New(bh, Options{})
	t.Cleanup(master.Close)
	t.Cleanup(backup.Close)
	// maxlen 200: a header and 5 entries of 36 bytes (188) fit, 6 do not.
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 9, McastGroup: group})
	})
	in(t, p.a, func() error {
		return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", SyncID: 9, SyncMaxlen: 200, McastGroup: group})
	})
	const n = 23
	q := mh.queues[0]
	for i := range n {
		r := record(i)
		if !q.Push(&r) {
			t.Fatal("queue full")
		}
	}
	// Two mixed-family connections the workers could not offer (Queue.Skip).
	q.Skip()
	q.Skip()
	q.Publish()
	waitFor(t, "the backup to install every entry", func() bool { return bh.count() == n })
	bh.mu.Lock()
	for i, c := range bh.installed {
		var want ipvssync.Conn
		r := record(i)
		r.Conn(&want)
		if c.CAddr != want.CAddr || c.CPort != want.CPort || c.State != want.State || c.Timeout != want.Timeout || c.Flags != want.Flags || c.DAddr != want.DAddr {
			t.Errorf("entry %d: got %+v, want %+v", i, c, want)
		}
	}
	bh.mu.Unlock()
	// The master counts a message once its write returns, and the backup
	// once it has installed its entries: either may lag the install.
	waitFor(t, "the counters", func() bool { return master.Stats().SentEntries >= n && backup.Stats().RecvMessages >= 5 })
	ms, bs := master.Stats(), backup.Stats()
	// 23 entries at 5 a message: 4 full messages and one of 3, flushed
	// after FlushAfter.
	if ms.SentEntries != n || ms.SentMessages != 5 || ms.SendErrors != 0 {
		t.Errorf("master stats %+v: want 23 entries in 5 messages", ms)
	}
	if ms.Drops[UnsentMixedFamily] != 2 {
		t.Errorf("master drops %v: want %s 2", ms.Drops, UnsentMixedFamily)
	}
	if bs.RecvMessages != 5 || bs.RecvEntries != n || bs.Installed != n {
		t.Errorf("backup stats %+v: want 5 messages, 23 entries installed", bs)
	}
	ds := master.Daemons()
	if len(ds) != 1 || ds[0].SyncMaxlen != 200 || ds[0].McastGroup != wantGroup || ds[0].McastPort != 8848 || ds[0].McastTTL != 1 {
		t.Errorf("master daemons %+v", ds)
	}
	bd := backup.Daemons()
	// A backup's maxlen comes from the interface MTU (1500) less the
	// IP and UDP headers of the group's family.
	if len(bd) != 1 || bd[0].SyncMaxlen != backupMax || bd[0].State != ipvsadm.Backup || bd[0].McastGroup != wantGroup {
		t.Errorf("backup daemons %+v: want maxlen %d, group %s", bd, backupMax, wantGroup)
	}
	// A master given no maxlen assumes an MTU of 1500, whatever the
	// interface's, less the same headers.
	in(t, p.a, func() error {
		if err := master.Stop(ipvsadm.Master); err != nil {
			return err
		}
		return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", SyncID: 9, McastGroup: group})
	})
	if ds := master.Daemons(); len(ds) != 1 || ds[0].SyncMaxlen != masterDflt {
		t.Errorf("master with the default maxlen: %+v, want maxlen %d", ds, masterDflt)
	}
}

// send writes raw datagrams to the sync group from ns out of dev.
func send(t *testing.T, ns *testnet.NS, dev string, msgs ...[]byte) {
	t.Helper()
	sendTo(t, ns, dev, ipvssync.DefaultGroup, msgs...)
}

// sendTo writes raw datagrams to group from ns out of dev.
func sendTo(t *testing.T, ns *testnet.NS, dev string, group netip.Addr, msgs ...[]byte) {
	t.Helper()
	in(t, ns, func() error {
		ifc, err := iface(dev)
		if err != nil {
			return err
		}
		c, err := openSender(ifc, group, ipvssync.DefaultPort, 1)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, m := range msgs {
			if _, err := c.WriteToUDPAddrPort(m, netip.AddrPortFrom(group, ipvssync.DefaultPort)); err != nil {
				return err
			}
		}
		return nil
	})
}

func message(t *testing.T, syncID uint8, conns ...ipvssync.Conn) []byte {
	t.Helper()
	buf := make([]byte, 2000)
	e, err := ipvssync.NewEncoder(buf, 1472, syncID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range conns {
		if err := e.Append(&conns[i]); err != nil {
			t.Fatal(err)
		}
	}
	return append([]byte(nil), e.Bytes()...)
}

// TestBackupDropsBadMessages: malformed datagrams through the socket are
// dropped and counted by reason, and entries the host refuses are counted
// by its reason; good ones around them are installed.
func TestBackupDropsBadMessages(t *testing.T) {
	p := newPair(t)
	bh := &fakeHost{drop: func(c *ipvssync.Conn) dataplane.SyncDrop {
		if c.DPort == 81 {
			return dataplane.SyncUnknownDest
		}
		return dataplane.SyncOK
	}}
	var logs testnet.LogBuffer
	backup := New(bh, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 5})
	})
	var good, unknown ipvssync.Conn
	r := record(1)
	r.Conn(&good)
	unknown = good
	unknown.DPort = 81
	ok := message(t, 5, good)
	wrongID := message(t, 6, good)
	badVersion := append([]byte(nil), ok...)
	badVersion[5] = 2
	truncated := append([]byte(nil), ok[:20]...)
	truncated[3] = 20 // size field matches, the entry runs past the end
	v0 := []byte{1, 5, 0, 4}
	send(t, p.a, "synca", wrongID, badVersion, truncated, v0, message(t, 5, unknown, good), ok)
	waitFor(t, "two good entries", func() bool { return bh.count() == 2 })
	waitFor(t, "the counters", func() bool { return backup.Stats().RecvMessages == 2 })
	st := backup.Stats()
	for reason, want := range map[string]uint64{"wrong_syncid": 1, "wrong_version": 1, "truncated": 1, "version0": 1, "unknown_dest": 1} {
		if st.Drops[reason] != want {
			t.Errorf("drops[%s] = %d, want %d (all: %v)", reason, st.Drops[reason], want, st.Drops)
		}
	}
	if st.RecvEntries != 3 || st.Installed != 2 {
		t.Errorf("received %d entries, installed %d; want 3 and 2", st.RecvEntries, st.Installed)
	}
	// The unknown real server is logged, naming it (the log line is
	// rate-limited to one per 5 s).
	if l := logs.String(); !strings.Contains(l, "sync backup: entries dropped") || !strings.Contains(l, "unknown_dest") || !strings.Contains(l, "198.18.0.11:81") {
		t.Errorf("log %q: want a line naming the dropped entry", l)
	}
}

// TestBackupDropsIPv6: an IPv6 entry the host cannot install (here the
// fake host answers unsupported, as dataplane.InstallSynced does for what
// afvs does not forward) is counted by that reason and logged by its
// addresses; the IPv4 entry beside it is installed.
func TestBackupDropsIPv6(t *testing.T) {
	p := newPair(t)
	bh := &fakeHost{drop: func(c *ipvssync.Conn) dataplane.SyncDrop {
		if c.IPv6() {
			return dataplane.SyncUnsupported
		}
		return dataplane.SyncOK
	}}
	var logs testnet.LogBuffer
	backup := New(bh, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 5})
	})
	var good ipvssync.Conn
	r := record(1)
	r.Conn(&good)
	v6 := good
	v6.CAddr, v6.VAddr, v6.DAddr = netip.MustParseAddr("2001:2::10"), netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::11")
	send(t, p.a, "synca", message(t, 5, v6, good))
	waitFor(t, "the IPv4 entry", func() bool { return bh.count() == 1 })
	waitFor(t, "the counters", func() bool { return backup.Stats().RecvEntries == 2 })
	if st := backup.Stats(); st.Drops["unsupported"] != 1 || st.Installed != 1 {
		t.Errorf("drops %v, installed %d: want unsupported 1, installed 1", st.Drops, st.Installed)
	}
	// The counters move while the message is decoded; the line is logged
	// after: wait for it.
	named := func() bool {
		l := logs.String()
		return strings.Contains(l, "unsupported") && strings.Contains(l, "[2001:2::11]:80")
	}
	for deadline := time.Now().Add(5 * time.Second); !named() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if !named() {
		t.Errorf("log %q: want a line naming the IPv6 entry", logs.String())
	}
}

// TestBackupHearsOnlyItsInterface: the backup's socket is bound to the
// sync interface and joined the group there only, so sync messages that
// arrive on another interface of the same host are never read; with an
// IPv4 group and with an IPv6 one.
func TestBackupHearsOnlyItsInterface(t *testing.T) {
	for _, group := range []netip.Addr{ipvssync.DefaultGroup, group6} {
		t.Run(group.String(), func(t *testing.T) { testBackupHearsOnlyItsInterface(t, group) })
	}
}

func testBackupHearsOnlyItsInterface(t *testing.T, group netip.Addr) {
	p := newPair(t)
	bh := &fakeHost{}
	backup := New(bh, Options{})
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", McastGroup: group})
	})
	var c ipvssync.Conn
	r := record(2)
	r.Conn(&c)
	msg := message(t, 0, c)
	// A listener on the other interface shows the datagrams do arrive
	// on that host, so their absence at the backup is its binding.
	heard := make(chan struct{}, 8)
	in(t, p.b, func() error {
		ifc, err := iface("otherb")
		if err != nil {
			return err
		}
		l, err := openReceiver(ifc, group, ipvssync.DefaultPort)
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			buf := make([]byte, 2000)
			for {
				if _, err := l.Read(buf); err != nil {
					return
				}
				heard <- struct{}{}
			}
		}()
		return nil
	})
	sendTo(t, p.c, "otherc", group, msg, msg, msg)
	select {
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("the other interface's listener heard nothing: the test network is broken")
	}
	time.Sleep(200 * time.Millisecond)
	if st := backup.Stats(); st.RecvMessages != 0 || bh.count() != 0 {
		t.Fatalf("the backup on syncb read messages sent to otherb: %+v", st)
	}
	sendTo(t, p.a, "synca", group, msg)
	waitFor(t, "the message on the sync interface", func() bool { return bh.count() == 1 })
}

// TestBackupBindsToGroup: as make_receive_sock, the backup's socket is
// bound to the group and port, not to the wildcard address, so a
// datagram sent to a unicast address of the backup on the sync port, on
// the sync interface, is never read; the group's messages are.
func TestBackupBindsToGroup(t *testing.T) {
	for _, tc := range []struct {
		group   netip.Addr
		unicast string // the backup's address on syncb
	}{{ipvssync.DefaultGroup, "198.18.77.2"}, {group6, "2001:2:77::2"}} {
		t.Run(tc.group.String(), func(t *testing.T) {
			p := newPair(t)
			bh := &fakeHost{}
			backup := New(bh, Options{})
			t.Cleanup(backup.Close)
			in(t, p.b, func() error {
				return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", McastGroup: tc.group})
			})
			backup.mu.Lock()
			local := backup.backup.conn.LocalAddr().(*net.UDPAddr).AddrPort()
			backup.mu.Unlock()
			// getsockname names a link-local group's scope: the sync
			// interface.
			if z := local.Addr().Zone(); local.Addr().WithZone("") != tc.group || local.Port() != ipvssync.DefaultPort || (z != "" && z != "syncb") {
				t.Errorf("the backup's socket is bound to %s, want %s", local, netip.AddrPortFrom(tc.group, ipvssync.DefaultPort))
			}
			var c ipvssync.Conn
			r := record(3)
			r.Conn(&c)
			msg := message(t, 0, c)
			in(t, p.a, func() error {
				u, err := net.Dial("udp", netip.AddrPortFrom(netip.MustParseAddr(tc.unicast), ipvssync.DefaultPort).String())
				if err != nil {
					return err
				}
				defer u.Close()
				// No socket listens on the unicast address: the backup's
				// host answers port unreachable, which a later write
				// reports.
				for range 3 {
					if _, err := u.Write(msg); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
						return err
					}
					time.Sleep(20 * time.Millisecond)
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond)
			sendTo(t, p.a, "synca", tc.group, msg)
			waitFor(t, "the group's message", func() bool { return bh.count() >= 1 && backup.Stats().RecvMessages >= 1 })
			time.Sleep(100 * time.Millisecond)
			if st := backup.Stats(); st.RecvMessages != 1 || bh.count() != 1 {
				t.Errorf("the backup read %d messages (%d entries installed): want only the group's, 1", st.RecvMessages, bh.count())
			}
		})
	}
}

// TestMasterTTLAndLoop: a master's datagrams reach the backup's link with
// the TTL, or for an IPv6 group the hop limit, given by mcast-ttl, and are
// not looped back to a listener on the master's own host (the kernel's
// set_mcast_ttl and set_mcast_loop(0) for both families).
func TestMasterTTLAndLoop(t *testing.T) {
	for _, group := range []netip.Addr{ipvssync.DefaultGroup, group6} {
		t.Run(group.String(), func(t *testing.T) {
			p := newPair(t)
			mh := &fakeHost{}
			master := New(mh, Options{FlushAfter: 20 * time.Millisecond})
			t.Cleanup(master.Close)
			// Listeners on both ends of the sync link: the backup's side
			// reads the TTL of what arrives; the master's side must hear
			// nothing.
			type heard struct{ ttl int }
			far := make(chan heard, 8)
			var near atomic.Int32
			listen := func(ns *testnet.NS, dev string, fn func(l *net.UDPConn)) {
				in(t, ns, func() error {
					ifc, err := iface(dev)
					if err != nil {
						return err
					}
					l, err := openReceiver(ifc, group, ipvssync.DefaultPort)
					if err != nil {
						return err
					}
					t.Cleanup(func() { l.Close() })
					go fn(l)
					return nil
				})
			}
			listen(p.b, "syncb", func(l *net.UDPConn) {
				if err := recvTTL(l, group.Is6()); err != nil {
					t.Error(err)
					return
				}
				buf, oob := make([]byte, 2000), make([]byte, 256)
				for {
					_, oobn, _, _, err := l.ReadMsgUDPAddrPort(buf, oob)
					if err != nil {
						return
					}
					far <- heard{ttlOf(t, oob[:oobn])}
				}
			})
			listen(p.a, "synca", func(l *net.UDPConn) {
				buf := make([]byte, 2000)
				for {
					if _, err := l.Read(buf); err != nil {
						return
					}
					near.Add(1)
				}
			})
			in(t, p.a, func() error {
				return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", McastGroup: group, McastTTL: 3})
			})
			r := record(4)
			mh.queues[0].Push(&r)
			mh.queues[0].Publish()
			select {
			case h := <-far:
				if h.ttl != 3 {
					t.Errorf("the message arrived with TTL %d, want mcast-ttl 3", h.ttl)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the master's message never reached the sync link")
			}
			time.Sleep(200 * time.Millisecond)
			if n := near.Load(); n != 0 {
				t.Errorf("a listener on the master's host heard %d of its messages: multicast loop is on", n)
			}
		})
	}
}

// recvTTL asks for each datagram's TTL (IPv4) or hop limit (IPv6) as
// ancillary data.
func recvTTL(c *net.UDPConn, ipv6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return control(func(fd int) error {
		if ipv6 {
			return syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_RECVHOPLIMIT, 1)
		}
		return syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_RECVTTL, 1)
	})("", "", rc)
}

// ttlOf finds the TTL or hop limit in a datagram's ancillary data; -1
// if there is none.
func ttlOf(t *testing.T, oob []byte) int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		t.Errorf("ancillary data: %v", err)
		return -1
	}
	for _, m := range msgs {
		if (m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_TTL) ||
			(m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_HOPLIMIT) {
			if len(m.Data) >= 4 {
				return int(binary.NativeEndian.Uint32(m.Data))
			}
		}
	}
	return -1
}

// TestStartStop: the kernel's answers in ipvsadm's words for a role
// already running or not running, an unknown interface refused with
// nothing started, and master and backup at once.
func TestStartStop(t *testing.T) {
	p := newPair(t)
	h := &fakeHost{}
	m := New(h, Options{})
	t.Cleanup(m.Close)
	in(t, p.b, func() error {
		if err := m.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "nosuchdev0"}); err == nil || !strings.Contains(err.Error(), `"nosuchdev0"`) {
			t.Errorf("unknown interface: %v", err)
		}
		if len(m.Daemons()) != 0 {
			t.Errorf("a refused start left %v running", m.Daemons())
		}
		if err := m.Stop(ipvsadm.Master); !errors.Is(err, ErrNotRunning) || err.Error() != "No daemon is running" {
			t.Errorf("stop with none running: %v", err)
		}
		for _, s := range []ipvsadm.DaemonState{ipvsadm.Master, ipvsadm.Backup} {
			if err := m.Start(ipvsadm.Daemon{State: s, McastIfn: "syncb", SyncID: 3}); err != nil {
				return err
			}
		}
		if err := m.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "syncb"}); !errors.Is(err, ErrRunning) || err.Error() != "Daemon has already run" {
			t.Errorf("second master: %v", err)
		}
		if len(m.Daemons()) != 2 {
			t.Errorf("daemons %v: want master and backup", m.Daemons())
		}
		if err := m.Stop(ipvsadm.Master); err != nil {
			return err
		}
		if ds := m.Daemons(); len(ds) != 1 || ds[0].State != ipvsadm.Backup || h.stopped != 1 {
			t.Errorf("after stopping the master: %v, host stopped %d times", ds, h.stopped)
		}
		// The role switch a notify script makes.
		if err := m.Stop(ipvsadm.Backup); err != nil {
			return err
		}
		return m.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "syncb"})
	})
	if ds := m.Daemons(); len(ds) != 1 || ds[0].State != ipvsadm.Master {
		t.Errorf("after the switch: %v", ds)
	}
}

// TestCheck refuses what Start would, without opening anything.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		d    ipvsadm.Daemon
		want string
	}{
		{ipvsadm.Daemon{State: 7, McastIfn: "lo"}, "must be master or backup"},
		{ipvsadm.Daemon{State: ipvsadm.Master}, "mcast-interface is required"},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo", McastGroup: netip.MustParseAddr("198.18.0.1")}, "mcast-group 198.18.0.1: not an IPv4 multicast address (224.0.0.0/4)"},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo", McastGroup: netip.MustParseAddr("2001:2::1")}, "mcast-group 2001:2::1: not an IPv6 multicast address (ff00::/8)"},
		{ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "lo", McastGroup: netip.MustParseAddr("::ffff:224.0.0.81")}, "mcast-group ::ffff:224.0.0.81: not an IPv6 multicast address"},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo", McastGroup: netip.MustParseAddr("ff01::8848")}, "mcast-group ff01::8848: multicast scope 1 (interface-local or reserved) never leaves the host"},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo", McastGroup: netip.MustParseAddr("ff30::8848")}, "mcast-group ff30::8848: multicast scope 0"},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo", McastGroup: netip.MustParseAddr("ff02::8848%lo")}, "mcast-group ff02::8848%lo: must not have a zone"},
		{ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "nosuchdev0"}, `mcast-interface "nosuchdev0": no such device`},
	} {
		if err := Check(tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want %q", tc.d, err, tc.want)
		}
	}
	if _, err := net.InterfaceByName("lo"); err == nil {
		for _, g := range []string{"", "224.0.0.81", "239.255.0.1", "ff02::8848", "ff05::51", "ff0e::1:2", "ff12::8848"} {
			d := ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "lo"}
			if g != "" {
				d.McastGroup = netip.MustParseAddr(g)
			}
			if err := Check(d); err != nil {
				t.Errorf("Check on lo with group %q: %v", g, err)
			}
		}
	}
}

// TestFill: the values start_sync_thread fills in, the maximum length
// from the group's family: 28 bytes of IPv4 and UDP headers, 48 of IPv6
// and UDP, off a master's assumed 1500 or a backup's interface MTU, and
// a given length clamped to what a datagram of the family carries.
func TestFill(t *testing.T) {
	g6 := netip.MustParseAddr("ff02::51")
	for _, tc := range []struct {
		d    ipvsadm.Daemon
		mtu  int
		want ipvsadm.Daemon
	}{
		{ipvsadm.Daemon{State: ipvsadm.Master}, 9000,
			ipvsadm.Daemon{State: ipvsadm.Master, SyncMaxlen: 1472, McastGroup: ipvssync.DefaultGroup, McastPort: 8848, McastTTL: 1}},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastGroup: g6}, 9000,
			ipvsadm.Daemon{State: ipvsadm.Master, SyncMaxlen: 1452, McastGroup: g6, McastPort: 8848, McastTTL: 1}},
		{ipvsadm.Daemon{State: ipvsadm.Backup, McastGroup: g6, McastPort: 9000, McastTTL: 4}, 9000,
			ipvsadm.Daemon{State: ipvsadm.Backup, SyncMaxlen: 8952, McastGroup: g6, McastPort: 9000, McastTTL: 4}},
		{ipvsadm.Daemon{State: ipvsadm.Backup, McastGroup: g6}, 65536,
			ipvsadm.Daemon{State: ipvsadm.Backup, SyncMaxlen: 65487, McastGroup: g6, McastPort: 8848, McastTTL: 1}},
		{ipvsadm.Daemon{State: ipvsadm.Master, McastGroup: g6, SyncMaxlen: 65507}, 1500,
			ipvsadm.Daemon{State: ipvsadm.Master, SyncMaxlen: 65487, McastGroup: g6, McastPort: 8848, McastTTL: 1}},
		{ipvsadm.Daemon{State: ipvsadm.Master, SyncMaxlen: 65507}, 1500,
			ipvsadm.Daemon{State: ipvsadm.Master, SyncMaxlen: 65507, McastGroup: ipvssync.DefaultGroup, McastPort: 8848, McastTTL: 1}},
		{ipvsadm.Daemon{State: ipvsadm.Backup, McastGroup: g6, SyncMaxlen: 100}, 1500,
			ipvsadm.Daemon{State: ipvsadm.Backup, SyncMaxlen: 1024, McastGroup: g6, McastPort: 8848, McastTTL: 1}},
	} {
		if got := Fill(tc.d, tc.mtu); got != tc.want {
			t.Errorf("Fill(%+v, %d) = %+v, want %+v", tc.d, tc.mtu, got, tc.want)
		}
	}
}

// control applies options to a socket before bind or connect.
func control(f func(fd int) error) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}
}

// TestMasterStartsWhileAddressTentative: a master on an IPv6 group starts
// on an interface whose only IPv6 address is still in duplicate address
// detection (as a link-local one is right after the link comes up, when
// keepalived's notify script may already switch roles), and its messages
// reach the backup once the address is usable. A sender that connects to
// the group fails to start there (EADDRNOTAVAIL): the kernel's own
// sender never connects.
func TestMasterStartsWhileAddressTentative(t *testing.T) {
	p := newPair(t)
	// synca's only IPv6 address: a link-local one under detection for
	// about 2 s (2 probes, 1 s apart).
	if err := p.a.Sysctl("net.ipv6.conf.synca.dad_transmits", "2"); err != nil {
		t.Fatal(err)
	}
	if err := p.a.IP("-6", "addr", "flush", "dev", "synca"); err != nil {
		t.Fatal(err)
	}
	if err := p.a.IP("-6", "addr", "add", "fe80::77:1/64", "dev", "synca"); err != nil {
		t.Fatal(err)
	}
	tentative := func() bool {
		out, err := p.a.Command("ip", "-6", "addr", "show", "dev", "synca").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(out), "tentative")
	}
	mh, bh := &fakeHost{}, &fakeHost{}
	master := New(mh, Options{FlushAfter: 50 * time.Millisecond})
	backup := New(bh, Options{})
	t.Cleanup(master.Close)
	t.Cleanup(backup.Close)
	in(t, p.b, func() error {
		return backup.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", SyncID: 9, McastGroup: group6})
	})
	if !tentative() {
		t.Fatal("synca's link-local address left detection before the master started: the test shows nothing")
	}
	in(t, p.a, func() error {
		return master.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "synca", SyncID: 9, McastGroup: group6})
	})
	waitFor(t, "synca's address to leave detection", func() bool { return !tentative() })
	q := mh.queues[0]
	r := record(1)
	if !q.Push(&r) {
		t.Fatal("queue full")
	}
	q.Publish()
	waitFor(t, "the backup to install the entry", func() bool { return bh.count() == 1 })
}
