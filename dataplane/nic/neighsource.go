package nic

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkNeighSource is the NeighSource of a Kernel: an RTNLGRP_NEIGH
// subscription in the Kernel's namespace, and RTM_NEWNEIGH with NTF_USE to
// trigger resolution.
type netlinkNeighSource struct {
	k       *Kernel
	onError func(error)
}

func (s *netlinkNeighSource) Subscribe(events chan<- NeighEvent, done <-chan struct{}) error {
	updates := make(chan netlink.NeighUpdate, 256)
	upDone := make(chan struct{})
	opts := netlink.NeighSubscribeOptions{
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-upDone:
				// Closing the socket on purpose makes Receive fail; not news.
				return
			default:
			}
			if s.onError != nil && !errors.Is(err, os.ErrClosed) {
				s.onError(fmt.Errorf("neighbour subscription: %w", err))
			}
		},
	}
	if s.k.ns.IsOpen() {
		ns := s.k.ns
		opts.Namespace = &ns
	}
	if err := netlink.NeighSubscribeWithOptions(updates, upDone, opts); err != nil {
		close(upDone)
		return err
	}
	go func() {
		defer close(events)
		defer func() {
			// Releases the netlink goroutines: one closes the socket, the
			// other then fails its read and closes updates, which must be
			// drained so that it never blocks on a send.
			close(upDone)
			for range updates {
			}
		}()
		for {
			select {
			case <-done:
				return
			case u, ok := <-updates:
				if !ok {
					return
				}
				ev, ok := neighEventOf(u)
				if !ok {
					continue
				}
				select {
				case events <- ev:
				case <-done:
					return
				}
			}
		}
	}()
	return nil
}

func neighEventOf(u netlink.NeighUpdate) (NeighEvent, bool) {
	nb := u.Neigh
	// The listing also returns AF_BRIDGE forwarding entries; only IP
	// neighbours matter here.
	if nb.Family != unix.AF_INET && nb.Family != unix.AF_INET6 {
		return NeighEvent{}, false
	}
	ip, ok := netip.AddrFromSlice(nb.IP)
	if !ok {
		return NeighEvent{}, false
	}
	ev := NeighEvent{
		Ifindex: nb.LinkIndex,
		IP:      ip.Unmap(),
		State:   uint16(nb.State),
		Deleted: u.Type == unix.RTM_DELNEIGH,
	}
	if len(nb.HardwareAddr) == 6 {
		copy(ev.MAC[:], nb.HardwareAddr)
	}
	return ev, true
}

// Resolve sends RTM_NEWNEIGH with NTF_USE. The kernel then creates the entry
// if needed (NLM_F_CREATE) and runs neigh_event_send on it: a missing, FAILED
// or STALE entry starts probing exactly as if a packet were queued to it,
// but one with no source address of its own: for IPv6 the kernel then
// solicits from the device's link-local address, and sends nothing while
// that address is in duplicate address detection, so Resolve solicits by
// hand then (solicit6).
//
// The request also updates the entry's state (to none, then incomplete), so
// it must never reach an entry that is fine as it is: measured here, a
// PERMANENT entry an operator configured was turned INCOMPLETE and then
// FAILED. Resolve therefore reads the kernel's entry first and leaves
// permanent, noarp, reachable and in-progress entries alone.
func (s *netlinkNeighSource) Resolve(ifindex int, ip netip.Addr) (NeighEvent, bool, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	var ev NeighEvent
	have := false
	if cur, err := s.k.h.NeighList(ifindex, family); err == nil {
		for _, n := range cur {
			a, ok := netip.AddrFromSlice(n.IP)
			if !ok || a.Unmap() != ip.Unmap() {
				continue
			}
			st := uint16(n.State)
			if st&nudUsable != 0 && len(n.HardwareAddr) == 6 {
				ev, have = NeighEvent{Ifindex: ifindex, IP: ip.Unmap(), MAC: [6]byte(n.HardwareAddr), State: st}, true
			}
			if st&(NudPermanent|NudNoARP|NudReachable|NudIncomplete|NudDelay|NudProbe) != 0 {
				return ev, have, nil
			}
		}
	}
	// Missing, STALE or FAILED: ask the kernel to (re)confirm it.
	nb := &netlink.Neigh{
		LinkIndex: ifindex,
		Family:    family,
		IP:        ip.AsSlice(),
		Flags:     netlink.NTF_USE,
	}
	if err := s.k.h.NeighSet(nb); err != nil {
		return ev, have, fmt.Errorf("request resolution of %s on ifindex %d: %w", ip, ifindex, err)
	}
	if family == netlink.FAMILY_V6 {
		// The request made the entry INCOMPLETE; while the device's
		// link-local address is in duplicate address detection the
		// kernel solicits nothing for it, so solicit by hand.
		if err := s.solicit6(ifindex, ip.Unmap()); err != nil {
			return ev, have, err
		}
	}
	return ev, have, nil
}
