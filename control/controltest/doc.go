// Package controltest runs the control API over an in-memory dataplane, so
// the control plane and afvsadm can be tested end to end without root, XDP
// or network namespaces.
//
// Director satisfies control.Director and control.MetricsSource. Apply
// compiles tables with dataplane.Build and a dataplane.StaticResolver, the
// same compiler the real director uses, so a table the fake accepts is one
// the daemon would accept too. One dataplane.Processor stands in for a
// worker: Feed pushes a frame through parse, conntrack, scheduling and
// encapsulation and counts it exactly as a worker would, which gives the
// statistics, the connection listing and the metrics real figures to show.
//
// Serve starts a control.Server for a Director on a unix socket in a test's
// temporary directory and stops it when the test ends.
package controltest
