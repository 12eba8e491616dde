package main

import (
	"strings"
	"testing"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/internal/testnet"
	"github.com/afvs/afvs/internal/testsupport"
)

// TestNATRouteEitherFamily: afvs realserver --mode nat without --gateway
// checks that replies have a way back: a host whose only default route is
// IPv6 (a real server of IPv6 services) is accepted, its route reported;
// with both, both are; with none, it is refused.
func TestNATRouteEitherFamily(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	n := testnet.New()
	t.Cleanup(func() { _ = n.Close() })
	ns, err := n.NS("rs")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "eth1"},
		{"link", "set", "eth0", "up"}, {"link", "set", "eth1", "up"},
		{"addr", "add", "198.18.2.11/24", "dev", "eth0"},
		{"-6", "addr", "add", "2001:2:0:3::11/64", "dev", "eth0", "nodad"},
	} {
		if err := ns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, want, wantErr string) {
		t.Helper()
		var how string
		err := ns.Do(func() error {
			var undo []func()
			var err error
			how, err = natRoute(nic.Current(), "eth0", nil, &undo)
			if len(undo) != 0 {
				t.Errorf("%s: %d undo steps for routes left alone", what, len(undo))
			}
			return err
		})
		switch {
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%s: %q, %v; want the error %q", what, how, err, wantErr)
		case wantErr == "" && (err != nil || how != want):
			t.Errorf("%s: %q, %v; want %q", what, how, err, want)
		}
	}
	check("no default route", "", "no default route, IPv4 or IPv6")
	if err := ns.IP("-6", "route", "add", "default", "via", "2001:2:0:3::1", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	check("IPv6 only", "default via 2001:2:0:3::1 dev eth0 (unchanged)", "")
	if err := ns.IP("route", "add", "default", "via", "198.18.2.1", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	check("both", "default via 198.18.2.1 dev eth0 (unchanged), default via 2001:2:0:3::1 dev eth0 (unchanged)", "")
}
