package platformtest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/header"
)

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// transmit carries a frame sent out of ifc to the interfaces on its segment
// that it is addressed to.
func (ifc *Iface) transmit(frame []byte) {
	if len(frame) < header.EthernetLen || ifc.segment == "" {
		return
	}
	dst := [6]byte(frame[0:6])
	n := ifc.host.net
	n.mu.Lock()
	var to []*Iface
	for _, o := range n.ifaces {
		if o != ifc && o.segment == ifc.segment && (o.MAC == dst || dst == broadcast) {
			to = append(to, o)
		}
	}
	n.mu.Unlock()
	for _, o := range to {
		o.receive(frame)
	}
}

// Send transmits frame out of ifc from the host's stack, as the kernel
// sends its own packets: no XDP program sees it on the way out.
func (ifc *Iface) Send(frame []byte) { ifc.transmit(frame) }

// receive runs ifc's XDP programs on an arriving frame and hands what they
// pass to the host's stack.
func (ifc *Iface) receive(frame []byte) {
	ifc.mu.Lock()
	st, dc := ifc.steer, ifc.decap
	ifc.mu.Unlock()
	if st != nil && st.redirect(ifc, frame) {
		return
	}
	b := append([]byte(nil), frame...)
	if dc != nil {
		b = dc.strip(b)
	}
	ifc.mu.Lock()
	h := ifc.handler
	if h == nil {
		ifc.inbox = append(ifc.inbox, b)
	}
	ifc.mu.Unlock()
	if h != nil {
		h(b)
	}
}

// Handle makes fn receive every frame ifc's stack gets from now on, on the
// sender's goroutine; fn may call Send. nil collects them for Recv again.
func (ifc *Iface) Handle(fn func(frame []byte)) {
	ifc.mu.Lock()
	ifc.handler = fn
	ifc.mu.Unlock()
}

// Recv returns and forgets the frames ifc's stack got since the last call.
func (ifc *Iface) Recv() [][]byte {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	out := ifc.inbox
	ifc.inbox = nil
	return out
}

// steering is the fake steering program: the same decisions as the real
// one's, counted the same way.
type steering struct {
	host        *Host
	maxServices int
	maxQueues   int

	mu       sync.Mutex
	keys     map[xdpprog.ServiceKey]bool
	anyKey   map[[5]byte]bool // addr+proto: the key non-first fragments match
	owners   [][6]byte        // destination MACs whose matched frames are redirected
	socks    map[int]*socket
	blocked  map[[4]byte]time.Time      // source -> end of its block, as the blocklist map
	blocked6 map[netip.Prefix]time.Time // IPv6 prefix -> end of its block (wire6.go)
	prefix6  int                        // the IPv6 block prefix; 0: xdpprog.DefaultBlockPrefix6
	stats    xdpprog.StatsCounters
	attached *Iface
	closed   bool
	local    localFlows
}

// LoadSteering implements director.Platform.
func (h *Host) LoadSteering(maxServices, maxQueues int) (director.Steering, error) {
	if maxServices < 1 || maxQueues < 1 {
		return nil, fmt.Errorf("load steering: max services %d and max queues %d must be at least 1", maxServices, maxQueues)
	}
	h.mu.Lock()
	h.programs++
	h.mu.Unlock()
	return &steering{host: h, maxServices: maxServices, maxQueues: maxQueues, keys: map[xdpprog.ServiceKey]bool{},
		anyKey: map[[5]byte]bool{}, socks: map[int]*socket{}}, nil
}

func (s *steering) RegisterSocket(queue int, sock director.Socket) error {
	ps, ok := sock.(*socket)
	if !ok || ps.host != s.host {
		return fmt.Errorf("register socket for queue %d: %T is not a socket of host %s", queue, sock, s.host.Name)
	}
	if queue < 0 || queue >= s.maxQueues {
		return fmt.Errorf("register socket for queue %d: the program has %d queues", queue, s.maxQueues)
	}
	if !ps.rx {
		return fmt.Errorf("register socket for queue %d: the socket has no RX ring", queue)
	}
	s.mu.Lock()
	s.socks[queue] = ps
	s.mu.Unlock()
	return nil
}

func (s *steering) SetServices(keys []xdpprog.ServiceKey) error {
	s.host.mu.Lock()
	fail := s.host.failSteer
	s.host.mu.Unlock()
	if fail != nil {
		return fail
	}
	if len(keys) > s.maxServices {
		return fmt.Errorf("set services: %d keys, the map holds %d", len(keys), s.maxServices)
	}
	m := make(map[xdpprog.ServiceKey]bool, len(keys))
	anyKey := map[[5]byte]bool{}
	for _, k := range keys {
		if k.Addr.Is6() {
			m[k] = true // IPv6: redirect6
			continue
		}
		if !k.Addr.Is4() {
			return fmt.Errorf("set services: %s: address must be IPv4", k)
		}
		m[k] = true
		if k.Source || k.Local {
			continue
		}
		a := k.Addr.As4()
		anyKey[[5]byte{a[0], a[1], a[2], a[3], k.Proto}] = true
	}
	s.mu.Lock()
	s.keys, s.anyKey = m, anyKey
	s.mu.Unlock()
	return nil
}

// SetOwnerMACs refuses what the real program refuses (a zero, a group,
// or more than xdpprog.MaxOwnerMACs distinct MACs) and keeps the old set
// then.
func (s *steering) SetOwnerMACs(macs ...[6]byte) error {
	var owners [][6]byte
	for i, m := range macs {
		if m == ([6]byte{}) || m[0]&1 != 0 {
			return fmt.Errorf("set owner MACs: MAC %d (%x) must be a unicast Ethernet address", i, m)
		}
		if !slices.Contains(owners, m) {
			owners = append(owners, m)
		}
	}
	if len(owners) > xdpprog.MaxOwnerMACs {
		return fmt.Errorf("set owner MACs: %d distinct MACs: at most %d", len(owners), xdpprog.MaxOwnerMACs)
	}
	s.mu.Lock()
	s.owners = owners
	s.mu.Unlock()
	return nil
}

func (s *steering) Attach(ifindex int, mode xdpprog.Mode) (director.Attachment, error) {
	ifc := s.host.byIndex(ifindex)
	if ifc == nil {
		return nil, fmt.Errorf("attach: host %s has no interface %d", s.host.Name, ifindex)
	}
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	if ifc.steer != nil {
		return nil, fmt.Errorf("attach to %s: a steering program is attached already", ifc.Name)
	}
	ifc.steer = s
	s.mu.Lock()
	s.attached = ifc
	s.mu.Unlock()
	return &attachment{mode: attachedMode(mode), detach: func() {
		ifc.mu.Lock()
		if ifc.steer == s {
			ifc.steer = nil
		}
		ifc.mu.Unlock()
	}}, nil
}

// Block refuses what the real program's Block refuses and otherwise
// drops src's redirectable frames for d, counted as Blocked.
func (s *steering) Block(src netip.Addr, d time.Duration) error {
	src = src.Unmap()
	if !src.IsValid() || src.Zone() != "" || d <= 0 || d > xdpprog.MaxBlockFor {
		return fmt.Errorf("block %s for %s: an IPv4 or IPv6 source, for more than 0 and at most %s", src, d, xdpprog.MaxBlockFor)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if src.Is6() {
		s.block6(src, d)
		return nil
	}
	if s.blocked == nil {
		s.blocked = map[[4]byte]time.Time{}
	}
	s.blocked[src.As4()] = time.Now().Add(d)
	return nil
}

func (s *steering) Stats() (xdpprog.StatsCounters, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats, nil
}

func (s *steering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.host.mu.Lock()
	s.host.programs--
	s.host.mu.Unlock()
	return nil
}

// redirect decides as the steering program does and, for a steered frame,
// hands it to the queue's socket.
func (s *steering) redirect(ifc *Iface, f []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.stats
	c.Total++
	if len(f) < header.EthernetLen {
		c.PassTruncated++
		return false
	}
	if header.Ethernet(f).EtherType() == header.EtherTypeIPv6 {
		return s.redirect6(ifc, f)
	}
	if header.Ethernet(f).EtherType() != header.EtherTypeIPv4 {
		c.PassNotIPv4++
		return false
	}
	ip := f[header.EthernetLen:]
	if len(ip) < header.IPv4MinLen {
		c.PassTruncated++
		return false
	}
	h := header.IPv4(ip)
	if h.Version() != 4 || h.HeaderLen() < header.IPv4MinLen {
		c.PassBadHeader++
		return false
	}
	proto := h.Protocol()
	dst := h.Dst()
	icmpNAT := false
	if proto == 1 {
		// ICMP from a VS/NAT real server, not to the director itself.
		for k := range s.keys {
			icmpNAT = icmpNAT || k.Source && k.Addr == netip.AddrFrom4(h.Src())
		}
		if icmpNAT && s.keys[xdpprog.ServiceKey{Addr: netip.AddrFrom4(dst), Local: true}] {
			c.PassNoService++
			return false
		}
	}
	if proto != 6 && proto != 17 && !icmpNAT {
		c.PassNotL4++
		return false
	}
	var sport uint16
	if h.FlagsFragment()&header.IPv4FragOffsetMask != 0 {
		if !s.anyKey[[5]byte{dst[0], dst[1], dst[2], dst[3], proto}] {
			c.PassNoService++
			return false
		}
		c.Fragments++
	} else if !icmpNAT {
		if len(ip) < h.HeaderLen()+4 {
			c.PassTruncated++
			return false
		}
		l4 := ip[h.HeaderLen():]
		sport = binary.BigEndian.Uint16(l4[0:2])
		dport := binary.BigEndian.Uint16(l4[2:4])
		a := netip.AddrFrom4(dst)
		src := netip.AddrFrom4(h.Src())
		reply := !s.keys[xdpprog.ServiceKey{Addr: a, Local: true}] &&
			(s.keys[xdpprog.ServiceKey{Addr: src, Proto: proto, Port: sport, Source: true}] || s.keys[xdpprog.ServiceKey{Addr: src, Proto: proto, Source: true}])
		if !s.keys[xdpprog.ServiceKey{Addr: a, Proto: proto, Port: dport}] && !s.keys[xdpprog.ServiceKey{Addr: a, Proto: proto}] && !reply {
			c.PassNoService++
			return false
		}
	}
	if !slices.Contains(s.owners, [6]byte(f[:6])) {
		c.PassOtherMAC++
		return false
	}
	if h.FlagsFragment()&header.IPv4FragOffsetMask == 0 && s.passLocal(h, ip[h.HeaderLen():]) {
		c.PassLocal++
		return false
	}
	if end, ok := s.blocked[h.Src()]; ok && time.Now().Before(end) {
		c.Blocked++
		return true // dropped in XDP
	}
	sock := s.socks[int(sport)%ifc.RxQueues]
	if sock == nil {
		c.PassNoSocket++
		return false
	}
	c.Redirected++
	sock.Deliver(f)
	return true
}

// attachedMode is the mode an attach in mode takes on the fake: auto
// falls back to generic, as on a driver without native XDP.
func attachedMode(m xdpprog.Mode) xdpprog.Mode {
	if m == xdpprog.ModeAuto {
		return xdpprog.ModeGeneric
	}
	return m
}

type attachment struct {
	mode   xdpprog.Mode
	once   sync.Once
	detach func()
}

func (a *attachment) Mode() xdpprog.Mode { return a.mode }

func (a *attachment) Close() error {
	a.once.Do(a.detach)
	return nil
}

// decap is the fake decapsulation program.
type decap struct {
	host *Host
	vips map[[4]byte]bool

	mu     sync.Mutex
	stats  xdpprog.Decap46Stats
	closed bool
}

// LoadDecap implements director.Platform.
func (h *Host) LoadDecap(vips []netip.Addr) (director.Decap, error) {
	set := map[[4]byte]bool{}
	for i, a := range vips {
		if a = a.Unmap(); !a.Is4() {
			return nil, fmt.Errorf("load decap: vip %d (%s): address must be IPv4", i, a)
		}
		set[a.As4()] = true
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("load decap: vips: need at least one address")
	}
	h.mu.Lock()
	h.programs++
	h.mu.Unlock()
	return &decap{host: h, vips: set}, nil
}

func (d *decap) Attach(ifindex int, mode xdpprog.Mode) (director.Attachment, error) {
	ifc := d.host.byIndex(ifindex)
	if ifc == nil {
		return nil, fmt.Errorf("attach: host %s has no interface %d", d.host.Name, ifindex)
	}
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	if ifc.decap != nil {
		return nil, fmt.Errorf("attach to %s: a decapsulation program is attached already", ifc.Name)
	}
	ifc.decap = d
	return &attachment{mode: attachedMode(mode), detach: func() {
		ifc.mu.Lock()
		if ifc.decap == d {
			ifc.decap = nil
		}
		ifc.mu.Unlock()
	}}, nil
}

func (d *decap) Stats() (xdpprog.Decap46Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats, nil
}

func (d *decap) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.host.mu.Lock()
		d.host.programs--
		d.host.mu.Unlock()
	}
	return nil
}

// strip removes the outer IPv4 header of an unfragmented IPIP packet whose
// inner destination is a VIP, keeping the Ethernet header.
func (d *decap) strip(f []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := &d.stats
	c.Total++
	if len(f) < header.EthernetLen+header.IPv4MinLen || header.Ethernet(f).EtherType() != header.EtherTypeIPv4 {
		c.PassNotTunnel++
		return f
	}
	outer := header.IPv4(f[header.EthernetLen:])
	if outer.Protocol() != 4 {
		c.PassNotTunnel++
		return f
	}
	ohl := outer.HeaderLen()
	if outer.Version() != 4 || ohl < header.IPv4MinLen {
		c.PassBadHeader++
		return f
	}
	if outer.MF() || outer.FragmentOffset() != 0 {
		c.PassFragment++
		return f
	}
	if len(f) < header.EthernetLen+ohl+header.IPv4MinLen {
		c.PassTruncated++
		return f
	}
	inner := header.IPv4(f[header.EthernetLen+ohl:])
	if !d.vips[inner.Dst()] {
		c.PassNotVIP++
		return f
	}
	c.IPIP++
	out := make([]byte, 0, len(f)-ohl)
	out = append(out, f[:header.EthernetLen]...)
	return append(out, f[header.EthernetLen+ohl:]...)
}

// neighbors is a host's neighbour cache: lookups read the host's table;
// Want resolves an address that an interface on the same segment holds, as
// ARP would, and OnChange runs on the cache's own goroutine.
type neighbors struct {
	host *Host
	opts nic.NeighborsOptions
	wake chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Neighbors implements director.Platform.
func (h *Host) Neighbors(opts nic.NeighborsOptions) (director.Neighbors, error) {
	n := &neighbors{host: h, opts: opts, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	h.caches = append(h.caches, n)
	h.mu.Unlock()
	n.wg.Add(1)
	go n.run()
	return n, nil
}

func (n *neighbors) run() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.wake:
			if n.opts.OnChange != nil {
				n.opts.OnChange()
			}
		}
	}
}

func (n *neighbors) notify() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *neighbors) Lookup(ifindex int, ip netip.Addr) ([6]byte, bool) {
	h := n.host
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ProxyARP && ip.Is4() {
		return dataplane.SyntheticMAC(ip), true
	}
	mac, ok := h.neigh[neighKey{ifindex, ip.Unmap()}]
	return mac, ok && mac != [6]byte{}
}

func (n *neighbors) Want(ifindex int, ip netip.Addr) error {
	ip = ip.Unmap()
	key := neighKey{ifindex, ip}
	h := n.host
	ifc := h.byIndex(ifindex)
	if ifc == nil {
		return fmt.Errorf("want neighbour %s: host %s has no interface %d", ip, h.Name, ifindex)
	}
	h.mu.Lock()
	_, known := h.neigh[key]
	h.mu.Unlock()
	if known {
		return nil
	}
	// ARP: whoever on the segment holds ip answers.
	net := h.net
	net.mu.Lock()
	var mac [6]byte
	found := false
	for _, o := range net.ifaces {
		if o == ifc || o.segment == "" || o.segment != ifc.segment {
			continue
		}
		for _, a := range o.Addrs {
			if a.Addr() == ip {
				mac, found = o.MAC, true
			}
		}
	}
	net.mu.Unlock()
	if found {
		h.mu.Lock()
		h.neigh[key] = mac
		h.mu.Unlock()
		n.notify()
	}
	return nil
}

func (n *neighbors) Close() {
	n.once.Do(func() {
		close(n.done)
		h := n.host
		h.mu.Lock()
		for i, c := range h.caches {
			if c == n {
				h.caches = append(h.caches[:i], h.caches[i+1:]...)
				break
			}
		}
		h.mu.Unlock()
	})
	n.wg.Wait()
}

// Eventually polls cond every millisecond until it holds or timeout passes,
// and reports whether it held: the fake's OnChange and the Director's
// rebuilds run on their own goroutines.
func Eventually(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}
