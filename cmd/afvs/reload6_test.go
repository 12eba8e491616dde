package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/vs"
)

// TestReloadIPv6Refused: a reload whose configuration adds an IPv6
// service, while the dataplane cannot forward it
// (dataplane.CheckForwardable), is refused naming the service, and
// nothing changes: the table in force, the dataplane's, and the rest of
// the configuration (the commit function is not called).
func TestReloadIPv6Refused(t *testing.T) {
	s := controltest.Serve(t)
	v4 := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr",
		Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Weight: 1}}}
	first := &vs.Table{}
	if err := first.AddService(v4); err != nil {
		t.Fatal(err)
	}
	s.Reload = func() (*vs.Table, func(), error) { return first, nil, nil }
	if err := runReload([]string{"--socket", s.Socket}); err != nil {
		t.Fatal(err)
	}
	next := first.Clone()
	next.Services[0].Reals[0].Weight = 5
	v6 := vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("2001:2::1"), Port: 443}, Sched: "mh",
		Persistent: true, Timeout: 300, Netmask: vs.PrefixMask(64, true),
		Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::11"), Port: 443, Weight: 1}}}
	if err := next.AddService(v6); err != nil {
		t.Fatal(err)
	}
	committed := false
	s.Reload = func() (*vs.Table, func(), error) { return next, func() { committed = true }, nil }
	err := runReload([]string{"--socket", s.Socket})
	if refusal := dataplane.CheckForwardable(next); refusal == nil {
		if err != nil || !committed || len(s.Director.Snapshot().Table.Services) != 2 {
			t.Fatalf("the dataplane forwards IPv6, but the reload: %v (committed %v)", err, committed)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "service TCP [2001:2::1]:443") || !strings.Contains(err.Error(), "old configuration still running") {
		t.Fatalf("reload with an IPv6 service: %v; want a refusal naming service TCP [2001:2::1]:443", err)
	}
	if committed {
		t.Error("a refused reload committed the rest of its configuration")
	}
	for what, tbl := range map[string]*vs.Table{"in force": s.Server.Table(), "in the dataplane": s.Director.Snapshot().Table} {
		if len(tbl.Services) != 1 || tbl.Services[0].Reals[0].Weight != 1 {
			t.Errorf("table %s after the refused reload: %+v, want the old one", what, tbl.Services)
		}
	}
}
