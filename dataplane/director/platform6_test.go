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
