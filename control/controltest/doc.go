// Package controltest runs the control API over an in-memory dataplane, so
// the control plane and afvsadm can be tested end to end without root, XDP
// or network namespaces.
//
// Director is the real director.Director on a dataplane/platformtest
// host, so what the control tests exercise is the daemon's own Apply, its
// snapshot compiler and its worker, not a copy. It satisfies
// control.Director and control.MetricsSource. Feed sends a frame from a
// client on the fake segment and runs the worker once: parse, conntrack,
// scheduling and encapsulation count it exactly as in the daemon, which
// gives the statistics, the connection listing and the metrics real
// figures to show.
//
// Serve starts a control.Server for a Director on a unix socket in a test's
// temporary directory and stops it when the test ends.
package controltest
