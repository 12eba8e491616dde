package director

import (
	"net/netip"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xdpprog"
)

// localKeys lists, when snap has VS/NAT real servers, the director's own
// addresses the steering programs must leave to the kernel even when a
// frame comes from a NAT real server: each interface's address and the
// source the kernel picks towards each NAT real server (the address its
// health checks come from).
func (d *Director) localKeys(snap *dataplane.Snapshot) []xdpprog.ServiceKey {
	if !snap.HasNAT() {
		return nil
	}
	var out []xdpprog.ServiceKey
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if a.IsValid() && a.Is4() && !a.IsUnspecified() && !seen[a] {
			seen[a] = true
			out = append(out, xdpprog.ServiceKey{Addr: a, Local: true})
		}
	}
	for _, ifc := range d.ifaces {
		add(netip.AddrFrom4(ifc.Addr))
	}
	for _, k := range snap.NATSources() {
		if h, err := d.plat.Route(k.Addr); err == nil {
			add(h.Src.Unmap())
		}
	}
	return out
}
