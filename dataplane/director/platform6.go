package director

import (
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/nic"
)

// setAddr6 gives the interface's first global unicast IPv6 address to the
// dataplane: the outer source of IPv6-in-IPv6 and IPv4-in-IPv6 tunnels
// sent there. A link-local address would not reach a real server behind a
// router, so an interface with only one has none (its IPv6 tunnel dests
// are unreachable, with the reason).
func setAddr6(out *dataplane.Iface, ifc nic.Iface) {
	for _, p := range ifc.Addrs {
		if a := p.Addr(); a.Is6() && !a.Is4In6() && a.IsGlobalUnicast() {
			out.Addr6, out.HaveAddr6 = a.As16(), true
			return
		}
	}
}
