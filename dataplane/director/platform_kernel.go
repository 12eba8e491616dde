package director

import (
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/dataplane/xsk"
)

// kernelPlatform is the Platform of the caller's network namespace:
// netlink for interfaces, routes and neighbours, AF_XDP sockets from
// package xsk, XDP programs from package xdpprog.
type kernelPlatform struct {
	k *nic.Kernel
}

// Kernel returns the Platform of the caller's network namespace.
func Kernel() Platform { return kernelPlatform{nic.Current()} }

func (p kernelPlatform) Lookup(name string) (nic.Iface, error) { return p.k.Lookup(name) }

func (p kernelPlatform) Route(dst netip.Addr) (nic.Hop, error) { return p.k.Route(dst) }

func (p kernelPlatform) Neighbors(opts nic.NeighborsOptions) (Neighbors, error) {
	n, err := p.k.Neighbors(opts)
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (p kernelPlatform) PlanCPUs(dev string, queues int, override map[int]int) ([]nic.Assignment, error) {
	return p.k.PlanCPUs(dev, queues, override)
}

func (kernelPlatform) Pin(cpu int) error { return nic.Pin(cpu) }

func (kernelPlatform) OpenSocket(ifindex, queue int, opt xsk.Options) (Socket, error) {
	s, err := xsk.Open(ifindex, queue, opt)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (kernelPlatform) LoadSteering(maxServices, maxQueues int) (Steering, error) {
	st, err := xdpprog.LoadSteering(maxServices, maxQueues)
	if err != nil {
		return nil, err
	}
	return kernelSteering{st}, nil
}

func (kernelPlatform) LoadDecap(vips []netip.Addr) (Decap, error) {
	d, err := xdpprog.LoadDecap46(vips)
	if err != nil {
		return nil, err
	}
	return kernelDecap{d}, nil
}

func (p kernelPlatform) Close() { p.k.Close() }

// kernelSteering registers sockets by their file descriptor, which only a
// kernel socket has.
type kernelSteering struct{ *xdpprog.Steering }

func (s kernelSteering) RegisterSocket(queue int, sock Socket) error {
	ks, ok := sock.(*xsk.Socket)
	if !ok {
		return fmt.Errorf("register socket for queue %d: a %T is not an AF_XDP socket of this kernel", queue, sock)
	}
	return s.Steering.RegisterSocket(queue, ks.FD())
}

func (s kernelSteering) Attach(ifindex int, mode xdpprog.Mode) (Attachment, error) {
	a, err := s.Steering.Attach(ifindex, mode)
	if err != nil {
		return nil, err
	}
	return a, nil
}

type kernelDecap struct{ *xdpprog.Decap46 }

func (d kernelDecap) Attach(ifindex int, mode xdpprog.Mode) (Attachment, error) {
	a, err := d.Decap46.Attach(ifindex, mode)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// OpenLocal opens a TUN device, afvsl0 or the next free number. It
// refuses a host whose net.ipv4.conf.all.rp_filter is 1 (strict): the
// kernel would drop every packet written into the device, whose clients
// route out of another interface.
func (kernelPlatform) OpenLocal() (LocalStack, error) {
	if v, err := nic.RPFilterAll(); err == nil && v == 1 {
		return nil, fmt.Errorf("local node: net.ipv4.conf.all.rp_filter is 1 (strict), so the kernel would drop the packets afvs hands it on a TUN device: set it to 0 or 2")
	}
	t, err := nic.OpenTun("afvsl%d")
	if err != nil {
		return nil, fmt.Errorf("local node: %w", err)
	}
	return kernelTun{t}, nil
}

type kernelTun struct{ *nic.Tun }

func (t kernelTun) Deliver(pkt []byte) error { return t.Write(pkt) }
func (t kernelTun) Name() string             { return t.Tun.Name }
