package director

import (
	"net/netip"
	"testing"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/nic"
)

// TestSetAddr6: an interface's IPv6 tunnel source is its first global
// unicast IPv6 address, never a link-local or IPv4-mapped one; with none,
// it has no IPv6 source.
func TestSetAddr6(t *testing.T) {
	p := netip.MustParsePrefix
	for _, c := range []struct {
		addrs []netip.Prefix
		want  string
	}{
		{[]netip.Prefix{p("fe80::1/64"), p("198.18.0.2/24"), p("2001:2::2/64"), p("2001:2::3/64")}, "2001:2::2"},
		{[]netip.Prefix{p("fe80::1/64"), p("198.18.0.2/24")}, ""},
		{nil, ""},
	} {
		var out dataplane.Iface
		setAddr6(&out, nic.Iface{Addrs: c.addrs})
		got := ""
		if out.HaveAddr6 {
			got = netip.AddrFrom16(out.Addr6).String()
		}
		if got != c.want {
			t.Errorf("%v: IPv6 source %q, want %q", c.addrs, got, c.want)
		}
	}
}

// TestBlockerIPv4Only: the workers' reports of sources far over their SYN
// rate reach the blocklist writer for IPv4 sources only; the steering
// program's blocklist cannot hold an IPv6 one (it would log a refusal and
// a block that did not happen).
func TestBlockerIPv4Only(t *testing.T) {
	b := &blocker{ch: make(chan [16]byte, 2)}
	b.Block(netip.MustParseAddr("2001:2::10").As16())
	v4 := netip.MustParseAddr("198.18.0.10").As16()
	b.Block(v4)
	if len(b.ch) != 1 || <-b.ch != v4 {
		t.Fatal("want only the IPv4 source reported")
	}
}
