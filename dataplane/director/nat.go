package director

import (
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/vs"
)

// localKeys lists, when snap has VS/NAT real servers, the director's own
// addresses the steering programs must leave to the kernel even when a
// frame comes from a NAT real server: each interface's IPv4 and IPv6
// address and the source the kernel picks towards each NAT real server
// (the address its health checks come from).
func (d *Director) localKeys(snap *dataplane.Snapshot) []xdpprog.ServiceKey {
	if !snap.HasNAT() {
		return nil
	}
	var out []xdpprog.ServiceKey
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if a.IsValid() && !a.IsUnspecified() && !seen[a] {
			seen[a] = true
			out = append(out, xdpprog.ServiceKey{Addr: a, Local: true})
		}
	}
	for _, ifc := range d.ifaces {
		add(netip.AddrFrom4(ifc.Addr))
		if ifc.HaveAddr6 {
			add(netip.AddrFrom16(ifc.Addr6))
		}
	}
	for _, k := range snap.NATSources() {
		if h, err := d.plat.Route(k.Addr); err == nil {
			add(h.Src.Unmap())
		}
	}
	return out
}

// natIndex is the size of the connection table's VS/NAT reply index: as
// big as the table, so that every connection may be a NAT one, or none.
func natIndex(o Options) int {
	if o.NoNAT {
		return 0
	}
	return o.Capacity
}

// checkNAT refuses VS/NAT real servers when the table has no reply index,
// as config's checkNATLayout does, so that afvsadm cannot add what afvs
// check refuses.
func (d *Director) checkNAT(t *vs.Table) error {
	if !d.opt.NoNAT {
		return nil
	}
	for _, s := range t.Services {
		for _, r := range s.Reals {
			if r.Fwd != vs.Masq {
				continue
			}
			return fmt.Errorf("service %s: real server %s: forwarding method masquerading (-m) needs the VS/NAT reply index, which this director was started without (table.nat: false)", s.Key, r.AddrPort())
		}
	}
	return nil
}
