package nic

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Address flags of <linux/if_addr.h> that make an IPv6 address unusable as
// a neighbour solicitation's source.
const (
	ifaFlagOptimistic = 0x04
	ifaFlagDADFailed  = 0x08
	ifaFlagTentative  = 0x40
)

const ifaNotUsable = ifaFlagOptimistic | ifaFlagDADFailed | ifaFlagTentative

// solicitSource decides whether a neighbour solicitation for target on a
// device with addrs needs sending by hand, and from where.
//
// The kernel's resolution request (NTF_USE) solicits with no packet
// queued, and ndisc_send_ns then takes the device's link-local address as
// the source; while that address is still in duplicate address detection
// (tentative or optimistic), as it is for a second or more after a link
// comes up, the kernel sends nothing at all and the entry stays
// INCOMPLETE until it fails. A packet the kernel sends itself would be
// solicited from its own source address instead, when that one is past
// detection. So: manual is false when the device has a usable link-local
// address (the kernel's solicitation goes out); otherwise src is the
// device's first usable unicast address, one on target's prefix first,
// and is invalid when there is none.
func solicitSource(addrs []netlink.Addr, target netip.Addr) (src netip.Addr, manual bool) {
	var first netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.Is6() || ip.Is4In6() || a.Flags&ifaNotUsable != 0 {
			continue
		}
		if ip.IsLinkLocalUnicast() {
			return netip.Addr{}, false
		}
		if !ip.IsGlobalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		if p, err := ip.Prefix(ones); err == nil && p.Contains(target) && !src.IsValid() {
			src = ip
		}
		if !first.IsValid() {
			first = ip
		}
	}
	if !src.IsValid() {
		src = first
	}
	return src, true
}

// solicitedNode is target's solicited-node multicast address (RFC 4291
// section 2.7.1): ff02::1:ff00:0/104 with target's low 24 bits.
func solicitedNode(target netip.Addr) netip.Addr {
	t := target.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
}

// neighborSolicitation is the ICMPv6 message of a neighbour solicitation
// for target (RFC 4861 section 4.3) with the source link-layer address
// option carrying mac. Its checksum is left zero: the kernel fills it in
// on a raw ICMPv6 socket.
func neighborSolicitation(target netip.Addr, mac [6]byte) []byte {
	b := make([]byte, 32)
	b[0] = 135 // neighbour solicitation, code 0, checksum and reserved 0
	t := target.As16()
	copy(b[8:24], t[:])
	b[24], b[25] = 1, 1 // source link-layer address, 8 bytes
	copy(b[26:32], mac[:])
	return b
}

// solicit6 sends the solicitation for target on ifindex that the kernel
// does not send while the device's link-local address is in duplicate
// address detection (see solicitSource), from a usable address of the
// device, so that the answer completes the INCOMPLETE entry the
// resolution request made. It does nothing when the kernel solicits
// itself.
func (s *netlinkNeighSource) solicit6(ifindex int, target netip.Addr) error {
	link, err := s.k.h.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("solicit %s: ifindex %d: %w", target, ifindex, err)
	}
	addrs, err := s.k.h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("solicit %s on %s: list addresses: %w", target, link.Attrs().Name, err)
	}
	src, manual := solicitSource(addrs, target)
	if !manual {
		return nil
	}
	if !src.IsValid() {
		return fmt.Errorf("solicit %s on %s: no IPv6 address past duplicate address detection to send from", target, link.Attrs().Name)
	}
	hw := link.Attrs().HardwareAddr
	if len(hw) != 6 {
		return fmt.Errorf("solicit %s on %s: link-layer address %v is not Ethernet's", target, link.Attrs().Name, hw)
	}
	var fd int
	if err := s.k.inNamespace(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		return err
	}); err != nil {
		return fmt.Errorf("solicit %s on %s: raw icmpv6 socket: %w", target, link.Attrs().Name, err)
	}
	defer unix.Close(fd)
	for _, o := range [][2]int{{unix.IPV6_MULTICAST_HOPS, 255}, {unix.IPV6_MULTICAST_IF, ifindex}, {unix.IPV6_MULTICAST_LOOP, 0}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o[0], o[1]); err != nil {
			return fmt.Errorf("solicit %s on %s: socket option %d: %w", target, link.Attrs().Name, o[0], err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16()}); err != nil {
		return fmt.Errorf("solicit %s on %s: bind %s: %w", target, link.Attrs().Name, src, err)
	}
	dst := &unix.SockaddrInet6{Addr: solicitedNode(target).As16(), ZoneId: uint32(ifindex)}
	if err := unix.Sendto(fd, neighborSolicitation(target, [6]byte(hw)), 0, dst); err != nil {
		return fmt.Errorf("solicit %s on %s from %s: %w", target, link.Attrs().Name, src, err)
	}
	return nil
}
