package syncd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// This file is the daemon's only OS code: the two multicast UDP sockets,
// made as ip_vs_sync.c's make_send_sock and make_receive_sock make them.
// Both are bound to the sync interface (SO_BINDTODEVICE), so neither sends
// nor hears anything on another interface; the receiver joins the group on
// that interface only.

// iface resolves the sync interface: its index and MTU.
func iface(name string) (*net.Interface, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("mcast-interface %q: no such device", name)
	}
	return ifc, nil
}

// control applies options to a socket before bind or connect.
func control(f func(fd int) error) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = f(int(fd)) }); cerr != nil {
			return cerr
		}
		return err
	}
}

// openSender is make_send_sock: a UDP socket bound to the interface,
// multicasting out of it with the given TTL, not looping its own messages
// back, and not fragmented by path MTU discovery (IP_PMTUDISC_DONT),
// connected to group:port.
func openSender(ifc *net.Interface, group netip.Addr, port uint16, ttl uint8) (*net.UDPConn, error) {
	d := net.Dialer{Control: control(func(fd int) error {
		if err := syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifc.Name); err != nil {
			return fmt.Errorf("SO_BINDTODEVICE %s: %w", ifc.Name, err)
		}
		if err := syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, &syscall.IPMreqn{Ifindex: int32(ifc.Index)}); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF %s: %w", ifc.Name, err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, int(ttl)); err != nil {
			return fmt.Errorf("IP_MULTICAST_TTL %d: %w", ttl, err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 0); err != nil {
			return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT); err != nil {
			return fmt.Errorf("IP_MTU_DISCOVER: %w", err)
		}
		return nil
	})}
	c, err := d.DialContext(context.Background(), "udp4", netip.AddrPortFrom(group, port).String())
	if err != nil {
		return nil, fmt.Errorf("sync master socket on %s: %w", ifc.Name, err)
	}
	return c.(*net.UDPConn), nil
}

// openReceiver is make_receive_sock: a UDP socket bound to the interface
// and to group:port, with the group joined on that interface only.
func openReceiver(ifc *net.Interface, group netip.Addr, port uint16) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control(func(fd int) error {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
		if err := syscall.SetsockoptString(fd, syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, ifc.Name); err != nil {
			return fmt.Errorf("SO_BINDTODEVICE %s: %w", ifc.Name, err)
		}
		return nil
	})}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(group, port).String())
	if err != nil {
		return nil, fmt.Errorf("sync backup socket on %s: %w", ifc.Name, err)
	}
	c := pc.(*net.UDPConn)
	rc, err := c.SyscallConn()
	if err == nil {
		err = control(func(fd int) error {
			m := syscall.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifc.Index)}
			return syscall.SetsockoptIPMreqn(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, &m)
		})("", "", rc)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("sync backup on %s: join %s: %w", ifc.Name, group, err)
	}
	return c, nil
}
