package nic

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkCounters are an interface's packet and drop counters as the kernel
// reports them over netlink (IFLA_STATS64): what `ip -s link` shows.
type LinkCounters struct {
	RxPackets, TxPackets uint64
	RxDropped, TxDropped uint64
	RxErrors, TxErrors   uint64
}

// LinkStats reads name's counters in the caller's namespace.
func LinkStats(name string) (LinkCounters, error) {
	if err := checkIfName(name); err != nil {
		return LinkCounters{}, fmt.Errorf("link stats: %w", err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return LinkCounters{}, fmt.Errorf("link stats of %s: %w", name, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return LinkCounters{}, fmt.Errorf("link stats of %s: the kernel sent none", name)
	}
	return LinkCounters{RxPackets: s.RxPackets, TxPackets: s.TxPackets, RxDropped: s.RxDropped, TxDropped: s.TxDropped,
		RxErrors: s.RxErrors, TxErrors: s.TxErrors}, nil
}

// DriverStats reads the driver's own statistics of name in the caller's
// namespace, by name, as `ethtool -S` lists them (ETHTOOL_GDRVINFO for
// their count, ETHTOOL_GSTRINGS for the names, ETHTOOL_GSTATS for the
// values). A driver that keeps none returns an empty map.
func DriverStats(name string) (map[string]uint64, error) {
	if err := checkIfName(name); err != nil {
		return nil, fmt.Errorf("driver stats: %w", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("driver stats of %s: socket: %w", name, err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return nil, fmt.Errorf("driver stats of %s: drvinfo: %w", name, err)
	}
	n := int(info.N_stats)
	out := make(map[string]uint64, n)
	if n == 0 {
		return out, nil
	}
	// struct ethtool_gstrings {u32 cmd, string_set, len; u8 data[len*32]}.
	strs := make([]uint64, (12+n*ethGStringLen+7)/8)
	sb := unsafe.Slice((*byte)(unsafe.Pointer(&strs[0])), len(strs)*8)
	*(*uint32)(unsafe.Pointer(&sb[0])) = unix.ETHTOOL_GSTRINGS
	*(*uint32)(unsafe.Pointer(&sb[4])) = ethSSStats
	*(*uint32)(unsafe.Pointer(&sb[8])) = uint32(n)
	if err := ethtoolIoctl(fd, name, unsafe.Pointer(&strs[0])); err != nil {
		return nil, fmt.Errorf("driver stats of %s: strings: %w", name, err)
	}
	// struct ethtool_stats {u32 cmd, n_stats; u64 data[n_stats]}.
	vals := make([]uint64, 1+n)
	vb := unsafe.Slice((*byte)(unsafe.Pointer(&vals[0])), 8)
	*(*uint32)(unsafe.Pointer(&vb[0])) = unix.ETHTOOL_GSTATS
	*(*uint32)(unsafe.Pointer(&vb[4])) = uint32(n)
	if err := ethtoolIoctl(fd, name, unsafe.Pointer(&vals[0])); err != nil {
		return nil, fmt.Errorf("driver stats of %s: values: %w", name, err)
	}
	// The kernel may report fewer than asked if the count changed between
	// the calls (a queue added); it writes how many it filled.
	got := min(n, int(*(*uint32)(unsafe.Pointer(&sb[8]))), int(*(*uint32)(unsafe.Pointer(&vb[4]))))
	for i := range got {
		s := sb[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := bytes.IndexByte(s, 0); j >= 0 {
			s = s[:j]
		}
		out[string(s)] = vals[1+i]
	}
	return out, nil
}

// From <linux/ethtool.h>: a statistic's name length and the string set of
// the statistics' names.
const (
	ethGStringLen = 32
	ethSSStats    = 1
)
