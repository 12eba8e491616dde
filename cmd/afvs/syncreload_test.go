package main

import (
	"log/slog"
	"testing"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/internal/testsupport"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/syncd"
)

// nullHost is a dataplane with no workers, for driving syncd.Manager.
type nullHost struct{}

func (nullHost) StartSync(ipvssync.Settings, int) ([]*ipvssync.Queue, error) { return nil, nil }
func (nullHost) SetSyncSettings(ipvssync.Settings)                           {}
func (nullHost) StopSync()                                                   {}
func (nullHost) SyncSeq(*ipvssync.Conn)                                      {}
func (nullHost) InstallSynced(*ipvssync.Conn, int) (conntrack.SyncResult, dataplane.SyncDrop) {
	return conntrack.SyncInserted, dataplane.SyncOK
}

// TestReloadSync: a reload puts a changed sync section in force, role by
// role, and leaves a role whose section did not change as afvsadm last
// made it, so that a reload never undoes a failover's role switch.
func TestReloadSync(t *testing.T) {
	testsupport.RequirePrivileged(t)
	sm := syncd.New(nullHost{}, syncd.Options{Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(sm.Close)
	none := &config.Config{}
	master := &config.Config{Sync: config.SyncConfig{Master: config.SyncDaemonConfig{Interface: "lo", SyncID: 4}}}
	roles := func() (out []string) {
		for _, d := range sm.Daemons() {
			out = append(out, d.State.String())
		}
		return out
	}
	if errs := reloadSync(sm, none, master); len(errs) != 0 {
		t.Fatal(errs)
	}
	if ds := sm.Daemons(); len(ds) != 1 || ds[0].State != ipvsadm.Master || ds[0].SyncID != 4 {
		t.Fatalf("after a reload adding a master: %+v", ds)
	}
	// The notify script makes this director a backup.
	if err := sm.Stop(ipvsadm.Master); err != nil {
		t.Fatal(err)
	}
	if err := sm.Start(ipvsadm.Daemon{State: ipvsadm.Backup, McastIfn: "lo"}); err != nil {
		t.Fatal(err)
	}
	// A reload whose sync section is unchanged keeps that.
	if errs := reloadSync(sm, master, master); len(errs) != 0 {
		t.Fatal(errs)
	}
	if r := roles(); len(r) != 1 || r[0] != "backup" {
		t.Fatalf("an unchanged reload changed the roles to %v", r)
	}
	// A changed master section restarts the master with it.
	master2 := &config.Config{Sync: config.SyncConfig{Master: config.SyncDaemonConfig{Interface: "lo", SyncID: 5}}}
	if errs := reloadSync(sm, master, master2); len(errs) != 0 {
		t.Fatal(errs)
	}
	if r := roles(); len(r) != 2 || r[0] != "master" || r[1] != "backup" {
		t.Fatalf("after a changed master section: %v", r)
	}
	// Removing it stops the master; the backup, not in either config,
	// stays.
	if errs := reloadSync(sm, master2, none); len(errs) != 0 {
		t.Fatal(errs)
	}
	if r := roles(); len(r) != 1 || r[0] != "backup" {
		t.Fatalf("after removing the master section: %v", r)
	}
	// A section naming a missing interface is reported, nothing else
	// changes.
	bad := &config.Config{Sync: config.SyncConfig{Master: config.SyncDaemonConfig{Interface: "nosuchdev0"}}}
	if errs := reloadSync(sm, none, bad); len(errs) != 1 {
		t.Fatalf("a missing interface: errors %v", errs)
	}
	if r := roles(); len(r) != 1 || r[0] != "backup" {
		t.Fatalf("a failed reload left %v", r)
	}
}
