package syncd

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
)

// boundDevice is the interface a socket is bound to (SO_BINDTODEVICE),
// "" when none.
func boundDevice(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dev string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("getsockopt SO_BINDTODEVICE: %v", gerr)
	}
	return dev
}

// TestSocketsBoundToInterface: the master's and the backup's sockets are
// each bound to the sync interface, for an IPv4 and an IPv6 group, so
// neither sends nor reads anything on another interface of the host
// (the LVS manual's section 4.6 complains of sync daemons on 0.0.0.0).
// TestBackupHearsOnlyItsInterface shows what that binding does for the
// backup; the master's socket, which never reads, is checked here.
func TestSocketsBoundToInterface(t *testing.T) {
	for _, group := range []netip.Addr{ipvssync.DefaultGroup, group6} {
		t.Run(group.String(), func(t *testing.T) {
			p := newPair(t)
			m := New(&fakeHost{}, Options{Log: slog.New(slog.DiscardHandler)})
			t.Cleanup(m.Close)
			in(t, p.b, func() error {
				if err := m.Start(ipvsadm.Daemon{State: ipvsadm.Master, McastIfn: "syncb", McastGroup: group}); err != nil {
					return err
				}
				return m.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "syncb", McastGroup: group})
			})
			m.mu.Lock()
			mc, bc := m.master.conn, m.backup.conn
			m.mu.Unlock()
			if dev := boundDevice(t, mc); dev != "syncb" {
				t.Errorf("the master's socket is bound to %q, want syncb", dev)
			}
			if dev := boundDevice(t, bc); dev != "syncb" {
				t.Errorf("the backup's socket is bound to %q, want syncb", dev)
			}
		})
	}
}
