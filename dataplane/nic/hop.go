package nic

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Hop is how the kernel would send a packet to one destination: out of
// which interface, to which next hop's MAC, from which address, and how big
// the packet may be.
type Hop struct {
	Ifindex int
	Dev     string
	// NextHop is the gateway, or the destination itself when it is on-link.
	// It is the address whose MAC the dataplane must resolve.
	NextHop netip.Addr
	// Src is the kernel's preferred source address for the destination, the
	// outer source of a VS/TUN packet.
	Src netip.Addr
	// MTU is the route's MTU metric when set, the interface MTU otherwise.
	MTU int
	// Local reports that dst is an address of this host (a route of type
	// local): the kernel delivers such packets to itself, on loopback.
	Local bool
}

// Route asks the caller's namespace how it reaches dst.
func Route(dst netip.Addr) (Hop, error) { return host.Route(dst) }

// Route asks k's namespace how it reaches dst (RTM_GETROUTE, the query
// behind `ip route get`), so policy routing and metrics apply exactly as they
// would to the kernel's own traffic.
func (k *Kernel) Route(dst netip.Addr) (Hop, error) {
	if !dst.IsValid() {
		return Hop{}, errors.New("route: destination address is not set")
	}
	dst = dst.Unmap()
	if dst.IsUnspecified() || dst.IsMulticast() {
		return Hop{}, fmt.Errorf("route to %s: destination must be a unicast address", dst)
	}
	routes, err := k.h.RouteGet(dst.AsSlice())
	if err != nil {
		return Hop{}, fmt.Errorf("no route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return Hop{}, fmt.Errorf("no route to %s: kernel returned no route", dst)
	}
	r := routes[0]
	if r.LinkIndex <= 0 {
		return Hop{}, fmt.Errorf("no route to %s: route has no output interface", dst)
	}
	link, err := k.h.LinkByIndex(r.LinkIndex)
	if err != nil {
		return Hop{}, fmt.Errorf("route to %s: interface %d: %w", dst, r.LinkIndex, err)
	}
	hop := Hop{Ifindex: r.LinkIndex, Dev: link.Attrs().Name, NextHop: dst, MTU: link.Attrs().MTU, Local: r.Type == unix.RTN_LOCAL}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && !gw.Unmap().IsUnspecified() {
		hop.NextHop = gw.Unmap()
	}
	if src, ok := netip.AddrFromSlice(r.Src); ok {
		hop.Src = src.Unmap()
	}
	if r.MTU > 0 {
		hop.MTU = r.MTU
	}
	return hop, nil
}
