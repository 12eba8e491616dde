// Package testnet builds throw-away networks of Linux network namespaces for
// the end-to-end tests, the demo and the benchmark harness: a client, a
// director and real servers joined by veth pairs and bridges, all addressed
// from the RFC 2544 benchmark range 198.18.0.0/15.
//
// Every namespace a Net creates carries the Net's unique prefix
// (afvs-<pid>-<n>-...), so parallel runs never collide, and Close deletes all
// of them: deleting a namespace destroys its veths, bridges and any XDP
// programs attached inside it, so nothing is left behind even if a test
// failed half way. Traffic only ever flows between these namespaces.
//
// The package drives iproute2's ip(8) for set-up, and enters a namespace
// in-process (NS.Do) for sockets and ioctls.
package testnet
