package nic

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtoolValue is struct ethtool_value from <linux/ethtool.h>.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data, the only member SIOCETHTOOL uses.
// unix.Ifreq offers no pointer member, hence this local layout; the padding
// brings it to the kernel's 40 bytes so the kernel never reads past it.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte
}

// DisableTxChecksum turns TX checksum offload off on name in the caller's
// namespace, like `ethtool -K name tx off`.
func DisableTxChecksum(name string) error { return host.DisableTxChecksum(name) }

// TxChecksum reports whether TX checksum offload is on for name in the
// caller's namespace.
func TxChecksum(name string) (bool, error) { return host.TxChecksum(name) }

// DisableTxChecksum turns TX checksum offload off on name in k's namespace.
// It uses the legacy ETHTOOL_STXCSUM command, which the kernel still
// translates into the NETIF_F_CSUM_MASK feature bits; that keeps the code to
// one fixed-size request instead of the ETHTOOL_SFEATURES bitmap dance.
func (k *Kernel) DisableTxChecksum(name string) error {
	if err := checkIfName(name); err != nil {
		return fmt.Errorf("disable tx checksum: %w", err)
	}
	if _, err := k.ethtool(name, unix.ETHTOOL_STXCSUM, 0); err != nil {
		return fmt.Errorf("disable tx checksum on %s: %w", name, err)
	}
	on, err := k.TxChecksum(name)
	if err != nil {
		return fmt.Errorf("disable tx checksum on %s: %w", name, err)
	}
	if on {
		// Some drivers mark the feature fixed and accept the request without
		// applying it.
		return fmt.Errorf("disable tx checksum on %s: driver kept it on", name)
	}
	return nil
}

// TxChecksum reports whether TX checksum offload is on for name in k's
// namespace (ETHTOOL_GTXCSUM).
func (k *Kernel) TxChecksum(name string) (bool, error) {
	if err := checkIfName(name); err != nil {
		return false, fmt.Errorf("read tx checksum: %w", err)
	}
	v, err := k.ethtool(name, unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("read tx checksum of %s: %w", name, err)
	}
	return v != 0, nil
}

// ethtool issues one ethtool_value command through SIOCETHTOOL on a socket
// created in k's namespace, since the ioctl resolves name there.
func (k *Kernel) ethtool(name string, cmd, data uint32) (uint32, error) {
	var fd int
	err := k.inNamespace(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	val := ethtoolValue{cmd: cmd, data: data}
	if err := ethtoolIoctl(fd, name, unsafe.Pointer(&val)); err != nil {
		return 0, err
	}
	return val.data, nil
}

// ethtoolIoctl issues one SIOCETHTOOL request on fd for name, whose
// buffer p starts with the command.
func ethtoolIoctl(fd int, name string, p unsafe.Pointer) error {
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = p
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(p)
	if errno != 0 {
		return fmt.Errorf("ioctl SIOCETHTOOL cmd %#x: %w", *(*uint32)(p), errno)
	}
	return nil
}
