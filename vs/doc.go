// Package vs is the virtual-service model that every part of the control
// plane shares: the daemon's config file, afvsadm's commands, the control API
// and the simulator all describe the director as a vs.Table, and the dataplane
// compiles a vs.Table into its immutable forwarding snapshot.
//
// A Table is a plain value. Edits (AddService, EditReal, ...) follow
// ipvsadm's rules and error messages, and either apply completely or leave the
// table untouched, so a request that would leave the table inconsistent is
// refused as a whole. Callers that share a Table copy it with Clone, edit the
// copy, and publish the result.
//
// Addresses are netip.Addr here, of either family, with IPVS's rules: a
// real server's family may differ from its service's only for a tunnel (-i)
// real server, and an IPv6 service's persistence netmask is a prefix. The
// model accepts IPv6 services; the dataplane does not forward them yet, and
// dataplane.Compile, which every path into the daemon goes through, refuses
// them by name.
package vs
