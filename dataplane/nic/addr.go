package nic

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddAddr adds prefix p to interface dev (e.g. a VIP/32 on lo for a real
// server). It reports whether the address was newly added, so the caller
// removes only what it added.
func (k *Kernel) AddAddr(dev string, p netip.Prefix) (added bool, err error) {
	link, err := k.h.LinkByName(dev)
	if err != nil {
		return false, fmt.Errorf("interface %s: %w", dev, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if err := k.h.AddrAdd(link, a); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("add %s to %s: %w", p, dev, err)
	}
	return true, nil
}

// DelAddr removes prefix p from dev.
func (k *Kernel) DelAddr(dev string, p netip.Prefix) error {
	link, err := k.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("interface %s: %w", dev, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if err := k.h.AddrDel(link, a); err != nil {
		return fmt.Errorf("remove %s from %s: %w", p, dev, err)
	}
	return nil
}

// SetUp brings dev up.
func (k *Kernel) SetUp(dev string) error {
	link, err := k.h.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("interface %s: %w", dev, err)
	}
	return k.h.LinkSetUp(link)
}

// DefaultRoute returns the gateway of the IPv4 (or with ipv6, the IPv6)
// default route, if there is one with a gateway.
func (k *Kernel) DefaultRoute(ipv6 bool) (gw netip.Addr, dev string, ok bool, err error) {
	family := netlink.FAMILY_V4
	if ipv6 {
		family = netlink.FAMILY_V6
	}
	routes, err := k.h.RouteListFiltered(family, &netlink.Route{Dst: nil}, netlink.RT_FILTER_DST)
	if err != nil {
		return netip.Addr{}, "", false, fmt.Errorf("list default routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !(r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) {
			continue
		}
		a, aok := netip.AddrFromSlice(r.Gw)
		if !aok {
			continue
		}
		name := ""
		if l, err := k.h.LinkByIndex(r.LinkIndex); err == nil {
			name = l.Attrs().Name
		}
		return a.Unmap(), name, true, nil
	}
	return netip.Addr{}, "", false, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

// ReplaceDefaultRoute makes gw on dev the default route of gw's family (a
// VS/NAT real server's way back to its clients through the director).
func (k *Kernel) ReplaceDefaultRoute(dev string, gw netip.Addr) error {
	r, err := k.defaultVia(dev, gw)
	if err != nil {
		return err
	}
	if err := k.h.RouteReplace(r); err != nil {
		return fmt.Errorf("default route via %s dev %s: %w", gw, dev, err)
	}
	return nil
}

// DeleteDefaultRoute removes the default route via gw on dev.
func (k *Kernel) DeleteDefaultRoute(dev string, gw netip.Addr) error {
	r, err := k.defaultVia(dev, gw)
	if err != nil {
		return err
	}
	return k.h.RouteDel(r)
}

// defaultVia is the default route of gw's family via gw on dev.
func (k *Kernel) defaultVia(dev string, gw netip.Addr) (*netlink.Route, error) {
	link, err := k.h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", dev, err)
	}
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if gw.Is6() {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice(), Dst: dst}, nil
}
