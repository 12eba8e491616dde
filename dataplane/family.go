package dataplane

import (
	"fmt"

	"github.com/afvs/afvs/vs"
)

// CheckForwardable refuses what the vs model accepts but this dataplane does
// not forward: VS/NAT over IPv6 (an IPv6 service with a masquerading real
// server; vs already keeps a NAT real server in its service's family).
// Compile calls it, and every way into the daemon compiles the table first
// (afvs run and afvs check, a reload, afvsadm through the control API), so
// nothing is accepted and then silently dropped. The error names the
// service and real server and the rule.
//
// Everything else IPv6 forwards: IPv6 services by address or firewall mark
// with DR and tunnel real servers of either family (IPv6-in-IPv6,
// IPv6-in-IPv4, and IPv4-in-IPv6 for an IPv4 service's IPv6 tunnel dest).
// A firewall mark's matches feed the mark's service of their own family,
// as IPVS looks a marked packet's service up by its family and mark.
func CheckForwardable(t *vs.Table) error {
	for _, s := range t.Services {
		if !s.Is6() {
			continue
		}
		for _, r := range s.Reals {
			if r.Fwd == vs.Masq {
				return fmt.Errorf("service %s: real server %s: VS/NAT over IPv6 is not implemented (IPv6 services forward by DR and tunnel)", s.Key, r.AddrPort())
			}
		}
	}
	return nil
}
