package ipvssync

import (
	"errors"
	"fmt"
	"net/netip"
)

// CheckGroup reports why a sync daemon cannot use g as its multicast
// group, or nil; the caller names g and the key or option. The kernel's ip_vs_genl_new_daemon takes an IPv4 group
// that ipv4_is_multicast accepts (224.0.0.0/4) and an IPv6 group whose
// ipv6_addr_type has IPV6_ADDR_MULTICAST (ff00::/8); CheckGroup takes the
// same, with two refusals the kernel does not make because they would run
// a daemon that never reaches a peer: an IPv6 group of scope 0 or 1
// (ff00::/16, ff01::/16 and their flagged forms), which ip6_finish_output2
// discards on every interface but loopback, and an address with a zone,
// since the daemon's interface (mcast-interface) is the group's scope.
// An IPv4-mapped address (::ffff:224.0.0.81) is not an IPv6 multicast
// address, as IN6_IS_ADDR_MULTICAST in ipvsadm says.
func CheckGroup(g netip.Addr) error {
	switch {
	case !g.IsValid():
		return errors.New("no address")
	case g.Zone() != "":
		return errors.New("must not have a zone (the sync interface scopes the group)")
	case g.Is4():
		if !g.IsMulticast() {
			return errors.New("not an IPv4 multicast address (224.0.0.0/4)")
		}
	case g.Is4In6() || g.As16()[0] != 0xff:
		return errors.New("not an IPv6 multicast address (ff00::/8)")
	default:
		if scope := g.As16()[1] & 0x0f; scope <= 1 {
			return fmt.Errorf("multicast scope %d (interface-local or reserved) never leaves the host; use a link-local (ff02::/16) or wider group", scope)
		}
	}
	return nil
}
