// Package api is the wire side of afvs's control API: the JSON types the
// daemon's control socket sends and receives, a Client for that socket,
// and the conversion of its answers into the ipvsadm package's model for
// listings and saves.
//
// It is what afvsadm links, so it imports no dataplane code, no netlink, no
// eBPF and no Prometheus: only the standard library and the ipvsadm
// package. The server side (package control) imports this package for the
// types; internal/layout's test keeps the direction one-way. The
// endpoints themselves are described in package control's documentation.
package api
