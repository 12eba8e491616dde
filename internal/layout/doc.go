// Package layout holds tests that keep the tree's import rules honest:
// each heavy dependency has exactly one home, the leaf packages never
// import the dataplane, only the lab command imports the lab code
// (internal/testnet, bench, sim), and each binary links only what its
// privilege needs: afvsadm and control/api no dataplane, control server,
// eBPF, AF_XDP, netlink, Prometheus or TLS; the daemon no lab code. It is
// the depguard block of a linter config plus `go list -deps` checks, run
// by go test so that CI enforces it without extra tools.
package layout
