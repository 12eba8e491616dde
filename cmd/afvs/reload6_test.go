package main

import (
	"net/netip"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

// TestReloadIPv6: a reload whose configuration adds an IPv6 service
// (and changes an IPv4 one) is applied: committed, and in force in the
// table and the dataplane.
func TestReloadIPv6(t *testing.T) {
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
		Reals: []vs.Real{{Addr: netip.MustParseAddr("2001:2::11"), Port: 8443, Fwd: vs.Masq, Weight: 1}}}
	if err := next.AddService(v6); err != nil {
		t.Fatal(err)
	}
	committed := false
	s.Reload = func() (*vs.Table, func(), error) { return next, func() { committed = true }, nil }
	if err := runReload([]string{"--socket", s.Socket}); err != nil || !committed {
		t.Fatalf("reload with an IPv6 NAT service: %v (committed %v)", err, committed)
	}
	for what, tbl := range map[string]*vs.Table{"in force": s.Server.Table(), "in the dataplane": s.Director.Snapshot().Table} {
		if len(tbl.Services) != 2 || tbl.Services[0].Reals[0].Weight != 5 || tbl.Services[1].Reals[0].Port != 8443 {
			t.Errorf("table %s after the reload: %+v", what, tbl.Services)
		}
	}
}
