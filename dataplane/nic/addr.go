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
