package nic

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// Iface describes a network interface as the dataplane needs it: where to
// attach (Index, RxQueues), what to put in the Ethernet source (MAC), how big
// frames may be (MTU) and which address to use as a tunnel source (IPv4).
type Iface struct {
	Index int
	Name  string
	// Kind is the netlink link type ("veth", "device", "bridge", ...).
	Kind string
	// MAC is all zeros for interfaces without a 6-byte hardware address.
	MAC      [6]byte
	MTU      int
	RxQueues int
	// IPv4 is the interface's first (primary) IPv4 address, or the zero
	// Addr when it has none.
	IPv4 netip.Addr
	// Addrs holds every address with its prefix, in kernel order.
	Addrs []netip.Prefix
}

// Lookup describes the interface called name in the caller's namespace.
func Lookup(name string) (Iface, error) { return host.Lookup(name) }

// Lookup describes the interface called name in k's namespace.
func (k *Kernel) Lookup(name string) (Iface, error) {
	if err := checkIfName(name); err != nil {
		return Iface{}, fmt.Errorf("lookup interface: %w", err)
	}
	link, err := k.h.LinkByName(name)
	if err != nil {
		return Iface{}, fmt.Errorf("lookup interface %s: %w", name, err)
	}
	a := link.Attrs()
	ifc := Iface{Index: a.Index, Name: a.Name, Kind: link.Type(), MTU: a.MTU, RxQueues: a.NumRxQueues}
	if len(a.HardwareAddr) == 6 {
		copy(ifc.MAC[:], a.HardwareAddr)
	}
	if k.local {
		// sysfs counts the queues that exist now; IFLA_NUM_RX_QUEUES is the
		// count the device was created with, which drivers may lower later
		// (ethtool -L).
		if n, err := countRxQueues(k.sys, name, a.Index); err == nil {
			ifc.RxQueues = n
		}
	}
	if ifc.RxQueues < 1 {
		ifc.RxQueues = 1
	}
	addrs, err := k.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return Iface{}, fmt.Errorf("lookup interface %s: list addresses: %w", name, err)
	}
	for _, ad := range addrs {
		if ad.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(ad.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := ad.Mask.Size()
		ifc.Addrs = append(ifc.Addrs, netip.PrefixFrom(ip, ones))
		if ip.Is4() && !ifc.IPv4.IsValid() {
			ifc.IPv4 = ip
		}
	}
	return ifc, nil
}

// countRxQueues counts /sys/class/net/NAME/queues/rx-*. It insists that the
// sysfs entry carries the expected ifindex, so that a same-named interface
// of another namespace is never counted by mistake.
func countRxQueues(sys, name string, index int) (int, error) {
	dir := filepath.Join(sys, "class/net", name)
	raw, err := os.ReadFile(filepath.Join(dir, "ifindex"))
	if err != nil {
		return 0, err
	}
	got, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("parse %s/ifindex %q: %w", dir, raw, err)
	}
	if got != index {
		return 0, fmt.Errorf("%s has ifindex %d, want %d: sysfs shows another namespace", dir, got, index)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "queues"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rx-") {
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%s/queues has no rx-* entries", dir)
	}
	return n, nil
}

// checkIfName applies the kernel's rules for interface names (dev_valid_name),
// so that a bad name is reported as such rather than as "link not found" and
// never reaches a path or an ioctl buffer.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) >= 16:
		return fmt.Errorf("interface name %q is %d bytes long, the limit is 15", name, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("interface name %q contains '/', ':', NUL or whitespace", name)
	}
	return nil
}
