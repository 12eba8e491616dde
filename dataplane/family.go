package dataplane

import (
	"fmt"

	"github.com/afvs/afvs/vs"
)

// CheckForwardable refuses what the vs model accepts but this dataplane does
// not forward yet: IPv6 services (address or firewall-mark), IPv6 real
// servers (the mixed-family tunnel dests IPVS allows) and IPv6 firewall-mark
// matches. Compile calls it, and every way into the daemon compiles the
// table first (afvs run and afvs check, a reload, afvsadm through the
// control API), so nothing IPv6 is accepted and then silently dropped. The
// error names the service or match and the rule.
func CheckForwardable(t *vs.Table) error {
	for _, s := range t.Services {
		if s.Is6() {
			return fmt.Errorf("service %s: IPv6 forwarding is not implemented yet (the IPv6 model, parser, schedulers and tunnels are; the dataplane does not forward IPv6)", s.Key)
		}
		for _, r := range s.Reals {
			if r.Addr.Is6() {
				return fmt.Errorf("service %s: real server %s: tunnelling to an IPv6 real server is not implemented yet", s.Key, r.AddrPort())
			}
		}
	}
	for i, m := range t.Marks {
		for j, x := range m.Matches {
			if x.Addr.Is6() {
				return fmt.Errorf("marks[%d].matches[%d] (mark %d): address %s: IPv6 forwarding is not implemented yet", i, j, m.Mark, x.Addr)
			}
		}
	}
	return nil
}
