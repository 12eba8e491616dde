package nic

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Tun is a layer-3 TUN device (IFF_TUN, no packet information header) of
// the caller's network namespace that the director writes packets into,
// so that the kernel receives them as if they had arrived on the device:
// the local node's first packets. The director never reads from it.
type Tun struct {
	fd    int
	Name  string
	Index int
}

// OpenTun creates a TUN device named after pattern (a "%d" in it is
// replaced by the kernel with the first free number), brings it up, and
// turns off reverse-path filtering on it: the packets written into it
// come from clients whose route leaves through another interface. The
// effective rp_filter is the larger of the device's and "all"'s;
// RPFilterAll reports the latter. IPv6 is on, so that the kernel takes
// IPv6 packets too, but the device gets no address (addr_gen_mode 1: no
// link-local, so no duplicate address detection or router solicitation
// ever leaves it) and takes no router advertisements; the kernel delivers
// an IPv6 packet for any of its own addresses whatever the interface it
// came in on.
func OpenTun(pattern string) (*Tun, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(pattern)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", pattern, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %q: %w", pattern, err)
	}
	t := &Tun{fd: fd, Name: ifr.Name()}
	if err := t.setUp(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tun) setUp() error {
	for _, s := range []struct{ path, val string }{
		{"/proc/sys/net/ipv6/conf/" + t.Name + "/addr_gen_mode", "1"},
		{"/proc/sys/net/ipv6/conf/" + t.Name + "/accept_ra", "0"},
		{"/proc/sys/net/ipv6/conf/" + t.Name + "/disable_ipv6", "0"},
		{"/proc/sys/net/ipv4/conf/" + t.Name + "/rp_filter", "0"},
	} {
		if err := os.WriteFile(s.path, []byte(s.val), 0); err != nil && !(errors.Is(err, os.ErrNotExist) && strings.Contains(s.path, "ipv6")) {
			return fmt.Errorf("tun %s: write %s: %w", t.Name, s.path, err)
		}
	}
	link, err := netlink.LinkByName(t.Name)
	if err != nil {
		return fmt.Errorf("tun %s: %w", t.Name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("tun %s: set up: %w", t.Name, err)
	}
	t.Index = link.Attrs().Index
	return nil
}

// RPFilterAll reads net.ipv4.conf.all.rp_filter: 1 (strict) makes the
// kernel drop what is written into a Tun, whatever the device's setting.
func RPFilterAll() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil {
		return 0, err
	}
	var v int
	_, err = fmt.Sscan(string(b), &v)
	return v, err
}

// Write hands one IP packet (IPv4 or IPv6: the kernel reads the version)
// to the kernel, which receives it on the device. It allocates nothing; a full backlog is an error (EAGAIN).
func (t *Tun) Write(pkt []byte) error {
	_, err := unix.Write(t.fd, pkt)
	return err
}

// Close removes the device.
func (t *Tun) Close() error {
	return unix.Close(t.fd)
}
