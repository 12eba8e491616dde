package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// xskTable is the XSKMAP that bpf_redirect_map consults, keyed by RX queue
// index. A queue without a socket makes the helper return its fallback
// verdict (XDP_PASS), so a frame is never dropped just because its worker
// is not running yet.
type xskTable struct {
	m         *ebpf.Map
	maxQueues int
}

func newXSKTable(name string, maxQueues int) (*xskTable, error) {
	if maxQueues < 1 {
		return nil, fmt.Errorf("max queues %d: must be at least 1", maxQueues)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       name,
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(maxQueues),
	})
	if err != nil {
		return nil, fmt.Errorf("create xsk map with %d queues: %w", maxQueues, err)
	}
	return &xskTable{m: m, maxQueues: maxQueues}, nil
}

// register points queue at the AF_XDP socket fd. The map does not keep the
// socket alive: when the socket is released the kernel drops the entry, and
// the queue falls back to XDP_PASS.
func (x *xskTable) register(queue, fd int) error {
	if queue < 0 || queue >= x.maxQueues {
		return fmt.Errorf("register socket for queue %d: queue must be in [0, %d)", queue, x.maxQueues)
	}
	if fd < 0 {
		return fmt.Errorf("register socket for queue %d: fd %d must not be negative", queue, fd)
	}
	if err := x.m.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("register socket fd %d for queue %d: %w", fd, queue, err)
	}
	return nil
}

// unregister removes the socket of queue, if any; frames for that queue
// then take the XDP_PASS fallback.
func (x *xskTable) unregister(queue int) error {
	if queue < 0 || queue >= x.maxQueues {
		return fmt.Errorf("unregister socket for queue %d: queue must be in [0, %d)", queue, x.maxQueues)
	}
	if err := x.m.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister socket for queue %d: %w", queue, err)
	}
	return nil
}

// mapOrNil is the table's map, or nil if the table was never created.
func (x *xskTable) mapOrNil() *ebpf.Map {
	if x == nil {
		return nil
	}
	return x.m
}
