package syncd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// This file is the daemon's only OS code: the two multicast UDP sockets,
// made as ip_vs_sync.c's make_send_sock and make_receive_sock make them,
// of the group's family (IPv4 or IPv6). Both are bound to the sync
// interface (SO_BINDTODEVICE), so neither sends nor hears anything on
// another interface; the receiver binds to the group and port, not to the
// wildcard address, and joins the group on that interface only.

// iface resolves the sync interface: its index and MTU.
func iface(name string) (*net.Interface, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("mcast-interface %q: no such device", name)
	}
	return ifc, nil
}

// senderOptions are make_send_sock's socket options for the group's
// family: the outgoing multicast interface (set_mcast_if), loopback of
// the daemon's own messages off (set_mcast_loop), the TTL or hop limit
// (set_mcast_ttl), and no path MTU discovery (set_mcast_pmtudisc,
// IP_PMTUDISC_DONT), so a message larger than a smaller path MTU is
// fragmented rather than refused.
func senderOptions(fd int, ifc *net.Interface, ipv6 bool, ttl uint8) error {
	type opt struct {
		name          string
		level, option int
		value         int
	}
	opts := []opt{
		{"IP_MULTICAST_TTL", syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, int(ttl)},
		{"IP_MULTICAST_LOOP", syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 0},
		{"IP_MTU_DISCOVER", syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT},
	}
	if ipv6 {
		opts = []opt{
			{"IPV6_MULTICAST_IF", syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, ifc.Index},
			{"IPV6_MULTICAST_HOPS", syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, int(ttl)},
			{"IPV6_MULTICAST_LOOP", syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_LOOP, 0},
			{"IPV6_MTU_DISCOVER", syscall.IPPROTO_IPV6, syscall.IPV6_MTU_DISCOVER, syscall.IPV6_PMTUDISC_DONT},
		}
	} else if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, &syscall.IPMreqn{Ifindex: int32(ifc.Index)}); err != nil {
		return fmt.Errorf("IP_MULTICAST_IF %s: %w", ifc.Name, err)
	}
	for _, o := range opts {
		if err := syscall.SetsockoptInt(fd, o.level, o.option, o.value); err != nil {
			return fmt.Errorf("%s %d: %w", o.name, o.value, err)
		}
	}
	return nil
}

// openSender is make_send_sock: a UDP socket of the group's family bound
// to the interface, multicasting out of it with the given TTL (hop limit
// for IPv6), not looping its own messages back, and not fragmented by
// path MTU discovery. As in the kernel, the socket is neither bound to an
// address nor connected: each message is sent to group:port, and the
// stack picks the interface's source address for the group's scope when
// it sends. A connect would pick it at once and fail while the interface
// has none yet (an IPv6 link-local address still in duplicate address
// detection right after the link comes up); unconnected, the daemon
// starts, and a message sent before the address is usable is counted as a
// send error.
func openSender(ifc *net.Interface, group netip.Addr, port uint16, ttl uint8) (*net.UDPConn, error) {
	family := syscall.AF_INET
	if group.Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("sync master socket on %s: %w", ifc.Name, err)
	}
	if err := syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifc.Name); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sync master socket on %s: SO_BINDTODEVICE: %w", ifc.Name, err)
	}
	if err := senderOptions(fd, ifc, group.Is6(), ttl); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sync master socket on %s: %w", ifc.Name, err)
	}
	f := os.NewFile(uintptr(fd), "afvs-sync-master")
	pc, err := net.FilePacketConn(f) // a duplicate of fd
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("sync master socket on %s: %w", ifc.Name, err)
	}
	return pc.(*net.UDPConn), nil
}

// openReceiver is make_receive_sock: a UDP socket of the group's family
// bound to the interface and to group:port, with the group joined on
// that interface only (IP_ADD_MEMBERSHIP, or IPV6_ADD_MEMBERSHIP as
// ipv6_sock_mc_join). The socket is made here rather than by
// net.ListenConfig, which binds a multicast address's socket to the
// wildcard address instead: bound to the group, it reads only datagrams
// sent to the group, never one sent to a unicast address of the host.
func openReceiver(ifc *net.Interface, group netip.Addr, port uint16) (*net.UDPConn, error) {
	family := syscall.AF_INET
	if group.Is6() {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, syscall.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("sync backup socket on %s: %w", ifc.Name, err)
	}
	if err := receiverSetup(fd, ifc, group, port); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sync backup on %s: %w", ifc.Name, err)
	}
	f := os.NewFile(uintptr(fd), "afvs-sync-backup")
	pc, err := net.FilePacketConn(f) // a duplicate of fd
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("sync backup socket on %s: %w", ifc.Name, err)
	}
	return pc.(*net.UDPConn), nil
}

// receiverSetup makes fd the backup's socket: reusable address (the
// kernel's SK_CAN_REUSE), bound to the device, then to group:port, then
// joined to the group on the device.
func receiverSetup(fd int, ifc *net.Interface, group netip.Addr, port uint16) error {
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifc.Name); err != nil {
		return fmt.Errorf("SO_BINDTODEVICE %s: %w", ifc.Name, err)
	}
	// An IPv6 group is bound with scope ID 0, as the kernel binds it:
	// the bound device gives a link-local group its interface.
	var sa syscall.Sockaddr
	if group.Is6() {
		sa = &syscall.SockaddrInet6{Port: int(port), Addr: group.As16()}
	} else {
		sa = &syscall.SockaddrInet4{Port: int(port), Addr: group.As4()}
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", netip.AddrPortFrom(group, port), err)
	}
	var err error
	if group.Is6() {
		m := syscall.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifc.Index)}
		err = syscall.SetsockoptIPv6Mreq(fd, syscall.IPPROTO_IPV6, syscall.IPV6_ADD_MEMBERSHIP, &m)
	} else {
		m := syscall.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifc.Index)}
		err = syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, &m)
	}
	if err != nil {
		return fmt.Errorf("join %s: %w", group, err)
	}
	return nil
}
