// Package replay pushes a pcap through the very same parse -> conntrack ->
// sched -> encap code the workers run (dataplane.Processor), and writes the
// frames the director would transmit. The connection table's clock follows
// the capture's timestamps, so timeouts behave as they would have live.
//
// There is no kernel here: every real server is on-link behind one
// interface whose MAC, address and MTU are options, and real-server MACs
// come from Options.MACs or are synthesised as 02:00:a:b:c:d from the
// server's IPv4 address (dataplane.SyntheticMAC).
package replay
