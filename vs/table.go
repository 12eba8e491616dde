package vs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Proto is the IP protocol number of a service.
type Proto uint8

const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto accepts "tcp" and "udp" in any case.
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("protocol %q: must be tcp or udp", s)
}

// Fwd is a real server's forwarding method, as ipvsadm's -g, -i and -m.
type Fwd uint8

const (
	Route  Fwd = iota // VS/DR, -g: rewrite the MAC only
	Tunnel            // VS/TUN, -i: IPIP encapsulation
	Masq              // VS/NAT, -m: destination and reply addresses and ports rewritten
	Local             // the real server is the director itself
)

// String gives ipvsadm's name for the method, as in the Forward column.
func (f Fwd) String() string {
	switch f {
	case Route:
		return "Route"
	case Tunnel:
		return "Tunnel"
	case Masq:
		return "Masq"
	case Local:
		return "Local"
	}
	return fmt.Sprintf("Fwd(%d)", uint8(f))
}

// ParseFwd accepts the config names dr/route/g, tun/tunnel/ipip/i and
// nat/masq/m.
func ParseFwd(s string) (Fwd, error) {
	switch strings.ToLower(s) {
	case "dr", "route", "g", "gatewaying", "":
		return Route, nil
	case "tun", "tunnel", "ipip", "i":
		return Tunnel, nil
	case "nat", "masq", "masquerading", "m":
		return Masq, nil
	}
	return 0, fmt.Errorf("forward %q: must be dr, tun or nat", s)
}

// DefaultPersistTimeout is the -p timeout when none is given (seconds):
// libipvs's IPVS_SVC_PERSISTENT_TIMEOUT, 6*60, which ipvsadm sends for a
// bare -p (its man page and the LVS manual say 300).
const DefaultPersistTimeout = 6 * 60

// MaxWeight is the largest weight ipvsadm accepts.
const MaxWeight = 65535

// Key identifies a service: a protocol, address and port, or a firewall mark
// and a family. IPVS keys firewall-mark services by (family, mark), so FWM 1
// and FWM 1 IPv6 (ipvsadm -f 1 -6) are two services.
type Key struct {
	Proto  Proto
	Addr   netip.Addr
	Port   uint16
	FWMark uint32
	IPv6   bool // a firewall-mark service of the IPv6 family; address services follow Addr
}

// Is6 reports whether the service is of the IPv6 family.
func (k Key) Is6() bool {
	if k.FWMark != 0 {
		return k.IPv6
	}
	return k.Addr.Is6()
}

func (k Key) String() string {
	if k.FWMark != 0 {
		if k.IPv6 {
			return fmt.Sprintf("FWM %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM %d", k.FWMark)
	}
	return fmt.Sprintf("%s %s", strings.ToUpper(k.Proto.String()), netip.AddrPortFrom(k.Addr, k.Port))
}

// Service is one virtual service and its real servers.
type Service struct {
	Key
	Sched      string   // scheduler name, e.g. "wlc"
	SchedFlags []string // -b flags, e.g. "sh-port"
	Persistent bool
	Timeout    uint32     // persistence timeout in seconds
	Netmask    netip.Addr // persistence granularity: a contiguous mask of the service's family, all ones by default (IPv6: a prefix, ipvsadm's -M 64)
	// OnePacket is ipvsadm's -o (IP_VS_SVC_F_ONEPACKET): each UDP
	// datagram is scheduled on its own and no connection is kept. It
	// needs a UDP or firewall-mark service; a firewall-mark service's
	// TCP packets make connections as usual.
	OnePacket bool
	Reals     []Real
}

// Real is a real server of a service.
type Real struct {
	Addr   netip.Addr
	Port   uint16
	Fwd    Fwd
	Weight int32
	Upper  uint32 // -x: connection count above which the server is overloaded
	Lower  uint32 // -y: connection count below which it is no longer overloaded
}

// AddrPort is the real server's address and port.
func (r Real) AddrPort() netip.AddrPort { return netip.AddrPortFrom(r.Addr, r.Port) }

// Match is one (address, protocol, port range) that belongs to a firewall-mark
// group. PortLo = PortHi = 0 matches every port.
type Match struct {
	Proto  Proto
	Addr   netip.Addr
	PortLo uint16
	PortHi uint16
}

// Mark is a named group of matches that together form the firewall-mark
// service -f Mark. It stands in for the iptables mangle rules an IPVS setup
// would use to set the mark.
type Mark struct {
	Mark    uint32
	Name    string
	Matches []Match
}

// Table is the whole virtual-server configuration.
type Table struct {
	Services []Service
	Marks    []Mark
}

// Errors with ipvsadm's wording, so scripts and people see what they know.
var (
	ErrServiceExists = errors.New("Service already exists")
	ErrNoService     = errors.New("No such service")
	ErrServiceUndef  = errors.New("Service not defined")
	ErrDestExists    = errors.New("Destination already exists")
	ErrNoDest        = errors.New("No such destination")
)

// Clone returns a deep copy.
func (t *Table) Clone() *Table {
	c := &Table{Services: make([]Service, len(t.Services)), Marks: make([]Mark, len(t.Marks))}
	for i, s := range t.Services {
		s.SchedFlags = slices.Clone(s.SchedFlags)
		s.Reals = slices.Clone(s.Reals)
		c.Services[i] = s
	}
	for i, m := range t.Marks {
		m.Matches = slices.Clone(m.Matches)
		c.Marks[i] = m
	}
	return c
}

// Find returns the index of the service with key k, or -1.
func (t *Table) Find(k Key) int {
	for i := range t.Services {
		if sameKey(t.Services[i].Key, k) {
			return i
		}
	}
	return -1
}

func sameKey(a, b Key) bool {
	if a.FWMark != 0 || b.FWMark != 0 {
		return a.FWMark == b.FWMark && a.IPv6 == b.IPv6
	}
	return a.Proto == b.Proto && a.Addr == b.Addr && a.Port == b.Port
}

// FindReal returns the index of real server addr:port in s, or -1.
func (s *Service) FindReal(addr netip.Addr, port uint16) int {
	for i := range s.Reals {
		if s.Reals[i].Addr == addr && s.Reals[i].Port == port {
			return i
		}
	}
	return -1
}

// Normalize fills in ipvsadm's defaults: scheduler wlc, persistence timeout
// DefaultPersistTimeout when persistent without one, netmask /32 (/128 for
// an IPv6 service).
func (s *Service) Normalize() {
	if s.Sched == "" {
		s.Sched = "wlc"
	}
	if s.Persistent && s.Timeout == 0 {
		s.Timeout = DefaultPersistTimeout
	}
	if !s.Netmask.IsValid() {
		s.Netmask = FullMask(s.Is6())
	}
}

// FullMask is the all-ones netmask of a family: 255.255.255.255, or
// ffff:...:ffff (/128) for IPv6.
func FullMask(ipv6 bool) netip.Addr {
	if ipv6 {
		return netip.AddrFrom16([16]byte{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff,
			8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff})
	}
	return netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// PrefixMask is the netmask of a family with the first bits ones: how
// ipvsadm's -M 64 of an IPv6 service (a prefix length, as the kernel keeps
// svc->netmask for AF_INET6) reads as an address.
func PrefixMask(bits int, ipv6 bool) netip.Addr {
	var b [16]byte
	for i := 0; i < bits && i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	if ipv6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// AddService adds s; it fails with ErrServiceExists if its key is taken.
func (t *Table) AddService(s Service) error {
	s.Normalize()
	if err := s.Validate(); err != nil {
		return err
	}
	if t.Find(s.Key) >= 0 {
		return ErrServiceExists
	}
	s.Reals = slices.Clone(s.Reals)
	t.Services = append(t.Services, s)
	return nil
}

// EditService replaces the settings (not the real servers) of an existing
// service, as ipvsadm -E does.
func (t *Table) EditService(s Service) error {
	i := t.Find(s.Key)
	if i < 0 {
		return ErrNoService
	}
	s.Normalize()
	s.Reals = t.Services[i].Reals
	if err := s.Validate(); err != nil {
		return err
	}
	t.Services[i] = s
	return nil
}

// DeleteService removes the service with key k.
func (t *Table) DeleteService(k Key) error {
	i := t.Find(k)
	if i < 0 {
		return ErrNoService
	}
	t.Services = slices.Delete(t.Services, i, i+1)
	return nil
}

// AddReal adds r to the service with key k.
func (t *Table) AddReal(k Key, r Real) error {
	i := t.Find(k)
	if i < 0 {
		return ErrServiceUndef
	}
	s := &t.Services[i]
	if err := r.Validate(); err != nil {
		return err
	}
	if err := s.checkFamily(r); err != nil {
		return err
	}
	if s.FindReal(r.Addr, r.Port) >= 0 {
		return ErrDestExists
	}
	s.Reals = append(s.Reals, r)
	return nil
}

// EditReal changes forwarding method, weight and thresholds of a real server.
func (t *Table) EditReal(k Key, r Real) error {
	i := t.Find(k)
	if i < 0 {
		return ErrServiceUndef
	}
	s := &t.Services[i]
	j := s.FindReal(r.Addr, r.Port)
	if j < 0 {
		return ErrNoDest
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if err := s.checkFamily(r); err != nil {
		return err
	}
	s.Reals[j] = r
	return nil
}

// DeleteReal removes a real server.
func (t *Table) DeleteReal(k Key, addr netip.Addr, port uint16) error {
	i := t.Find(k)
	if i < 0 {
		return ErrServiceUndef
	}
	s := &t.Services[i]
	j := s.FindReal(addr, port)
	if j < 0 {
		return ErrNoDest
	}
	s.Reals = slices.Delete(s.Reals, j, j+1)
	return nil
}

// KeepDestOrder reorders the real servers of t, a table about to replace
// prev (a reload), so that each service keeps the order of addition prev
// had: the real servers prev already had come first, in prev's order, and
// the new ones follow in t's order, as if each were added with -a. IPVS
// keeps its list order across a reload that keeps a dest, because nothing
// re-adds it; the order matters to every scheduler (see sched.KernelOrder).
func (t *Table) KeepDestOrder(prev *Table) {
	for i := range t.Services {
		s := &t.Services[i]
		j := prev.Find(s.Key)
		if j < 0 {
			continue
		}
		old := &prev.Services[j]
		if s.hasDuplicateReal() {
			continue // left for Validate to refuse, unchanged
		}
		out := make([]Real, 0, len(s.Reals))
		for _, r := range old.Reals {
			if k := s.FindReal(r.Addr, r.Port); k >= 0 {
				out = append(out, s.Reals[k])
			}
		}
		for _, r := range s.Reals {
			if old.FindReal(r.Addr, r.Port) < 0 {
				out = append(out, r)
			}
		}
		s.Reals = out
	}
}

func (s *Service) hasDuplicateReal() bool {
	for j, r := range s.Reals {
		if s.FindReal(r.Addr, r.Port) != j {
			return true
		}
	}
	return false
}

// Validate checks one service on its own (without its real servers' uniqueness
// across services, which needs the table).
func (s *Service) Validate() error {
	if s.FWMark == 0 {
		if s.Proto != TCP && s.Proto != UDP {
			return fmt.Errorf("service %s: protocol must be tcp or udp", s.Key)
		}
		if !s.Addr.IsValid() {
			return fmt.Errorf("service %s: address is missing", s.Key)
		}
		if s.Addr.Is4In6() || s.Addr.Zone() != "" {
			return fmt.Errorf("service %s: address %s: must be a plain IPv4 or IPv6 address (no IPv4-mapped form, no zone)", s.Key, s.Addr)
		}
		if s.Port == 0 && !s.Persistent {
			return fmt.Errorf("service %s: port 0 (all ports) requires persistence (-p), as in ipvsadm", s.Key)
		}
		if s.OnePacket && s.Proto != UDP {
			return fmt.Errorf("service %s: One-Packet Scheduling is only for UDP virtual services (as ipvsadm says); -o needs a udp or fwmark service", s.Key)
		}
	}
	if s.Netmask.IsValid() {
		if s.Netmask.Is6() != s.Is6() || s.Netmask.Is4In6() {
			fam := "IPv4"
			if s.Is6() {
				fam = "IPv6"
			}
			return fmt.Errorf("service %s: netmask %s: must be an %s mask, as the service", s.Key, s.Netmask, fam)
		}
		if _, err := MaskBits(s.Netmask); err != nil {
			return fmt.Errorf("service %s: %w", s.Key, err)
		}
	}
	for _, r := range s.Reals {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("service %s: %w", s.Key, err)
		}
		if err := s.checkFamily(r); err != nil {
			return err
		}
	}
	return nil
}

// checkFamily checks r's family against the service's. IPVS
// (ip_vs_genl_set_cmd) lets a real server's family differ from its
// service's only when it is a tunnel (-i) dest.
func (s *Service) checkFamily(r Real) error {
	if r.Addr.Is6() != s.Is6() && r.Fwd != Tunnel {
		return fmt.Errorf("service %s: real server %s: its address family differs from the service's, which IPVS allows only for tunnel (-i) real servers", s.Key, r.AddrPort())
	}
	return nil
}

// MaskBits returns the prefix length of a contiguous netmask of either
// family.
func MaskBits(m netip.Addr) (int, error) {
	b := m.AsSlice()
	n := 0
	for n < len(b)*8 && b[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	for i := n; i < len(b)*8; i++ {
		if b[i/8]&(0x80>>(i%8)) != 0 {
			return 0, fmt.Errorf("netmask %s: ones must be contiguous", m)
		}
	}
	return n, nil
}

// Validate checks a real server.
func (r *Real) Validate() error {
	if !r.Addr.IsValid() {
		return fmt.Errorf("real server: address is missing")
	}
	if r.Addr.Is4In6() || r.Addr.Zone() != "" {
		return fmt.Errorf("real server %s: must be a plain IPv4 or IPv6 address (no IPv4-mapped form, no zone)", r.AddrPort())
	}
	if err := checkUnicast(r.Addr); err != nil {
		return fmt.Errorf("real server %s: %w", r.AddrPort(), err)
	}
	if r.Weight < 0 || r.Weight > MaxWeight {
		return fmt.Errorf("real server %s: weight %d: must be 0..%d", r.AddrPort(), r.Weight, MaxWeight)
	}
	if r.Lower > r.Upper && r.Upper != 0 {
		return fmt.Errorf("real server %s: lower threshold %d: must not exceed upper threshold %d", r.AddrPort(), r.Lower, r.Upper)
	}
	if r.Fwd == Local {
		return fmt.Errorf("real server %s: local forwarding: afvs does not deliver to the director itself", r.AddrPort())
	}
	return nil
}

// checkUnicast refuses a real server address IPVS refuses
// (ip_vs_new_dest, EINVAL): an IPv4 address the kernel does not type
// unicast or local (multicast; 0.0.0.0/8 and 255.255.255.255, which it
// types broadcast), and an IPv6 address that is not unicast (multicast,
// ::) or is link-local. The kernel takes a link-local real server only
// when it is one of the director's own addresses; afvs refuses it, as it
// names no host without an interface.
func checkUnicast(a netip.Addr) error {
	const rule = "a real server must be a unicast address, as IPVS requires"
	switch {
	case a.IsMulticast():
		return fmt.Errorf("a multicast address: %s", rule)
	case a.Is4() && (a.As4()[0] == 0 || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})):
		return fmt.Errorf("a broadcast address (0.0.0.0/8 and 255.255.255.255 are): %s", rule)
	case a.IsUnspecified():
		return fmt.Errorf("the unspecified address: %s", rule)
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Errorf("a link-local address names no host without its interface (IPVS takes one only when it is the director's own); use a global or unique-local address")
	}
	return nil
}

// Validate checks the whole table: each service, the uniqueness of keys, and
// that every firewall-mark service has its group and no two groups overlap.
func (t *Table) Validate() error {
	seen := map[Key]bool{}
	for i := range t.Services {
		s := &t.Services[i]
		if err := s.Validate(); err != nil {
			return err
		}
		k := s.Key
		if k.FWMark != 0 {
			k = Key{FWMark: k.FWMark, IPv6: k.IPv6}
		}
		if seen[k] {
			return fmt.Errorf("service %s: %w", s.Key, ErrServiceExists)
		}
		seen[k] = true
		if err := s.uniqueReals(); err != nil {
			return err
		}
		if s.FWMark != 0 && t.markIndex(s.FWMark) < 0 {
			return fmt.Errorf("service FWM %d: no firewall-mark group defines mark %d (add it under marks)", s.FWMark, s.FWMark)
		}
	}
	for i, m := range t.Marks {
		if m.Mark == 0 {
			return fmt.Errorf("marks[%d]: mark 0: must be 1 or more", i)
		}
		if len(m.Matches) == 0 {
			return fmt.Errorf("marks[%d] (mark %d): has no matches", i, m.Mark)
		}
		for j, x := range m.Matches {
			if x.Proto != TCP && x.Proto != UDP {
				return fmt.Errorf("marks[%d].matches[%d]: protocol must be tcp or udp", i, j)
			}
			if !x.Addr.IsValid() || x.Addr.Is4In6() || x.Addr.Zone() != "" {
				return fmt.Errorf("marks[%d].matches[%d]: address %s: must be a plain IPv4 or IPv6 address", i, j, x.Addr)
			}
			if x.PortHi < x.PortLo {
				return fmt.Errorf("marks[%d].matches[%d]: port range %d-%d: high end below low end", i, j, x.PortLo, x.PortHi)
			}
		}
		if t.markIndex(m.Mark) != i {
			return fmt.Errorf("marks[%d]: mark %d is defined twice", i, m.Mark)
		}
	}
	return t.checkMarkOverlap()
}

// checkMarkOverlap refuses two groups that match the same (address,
// protocol, port): a packet can carry only one mark. Port ranges are
// sorted per address and protocol, so the check is O(n log n).
func (t *Table) checkMarkOverlap() error {
	type span struct {
		lo, hi     int
		group, idx int
	}
	type ap struct {
		addr  netip.Addr
		proto Proto
	}
	spans := map[ap][]span{}
	for i, m := range t.Marks {
		for j, x := range m.Matches {
			lo, hi := int(x.PortLo), int(x.PortHi)
			if lo == 0 && hi == 0 {
				hi = 65535 // every port
			}
			k := ap{x.Addr, x.Proto}
			spans[k] = append(spans[k], span{lo, hi, i, j})
		}
	}
	for k, ss := range spans {
		slices.SortFunc(ss, func(a, b span) int {
			if a.lo != b.lo {
				return a.lo - b.lo
			}
			return a.hi - b.hi
		})
		// Track the span reaching furthest so far; another group's span
		// starting at or before its end overlaps it.
		far := ss[0]
		for _, s := range ss[1:] {
			if s.lo <= far.hi && s.group != far.group {
				a, b := far, s
				if a.group > b.group || (a.group == b.group && a.idx > b.idx) {
					a, b = b, a
				}
				port := max(a.lo, b.lo)
				return fmt.Errorf("marks[%d].matches[%d] (mark %d) and marks[%d].matches[%d] (mark %d) overlap at %s %s port %d: a packet carries one firewall mark",
					a.group, a.idx, t.Marks[a.group].Mark, b.group, b.idx, t.Marks[b.group].Mark, k.proto, k.addr, port)
			}
			if s.hi > far.hi {
				far = s
			}
		}
	}
	return nil
}

// uniqueReals checks that no two real servers of s share an address and
// port, in time linear in their number.
func (s *Service) uniqueReals() error {
	seen := make(map[netip.AddrPort]struct{}, len(s.Reals))
	for _, r := range s.Reals {
		ap := r.AddrPort()
		if _, dup := seen[ap]; dup {
			return fmt.Errorf("service %s: real server %s: %w", s.Key, ap, ErrDestExists)
		}
		seen[ap] = struct{}{}
	}
	return nil
}

func (t *Table) markIndex(mark uint32) int {
	for i := range t.Marks {
		if t.Marks[i].Mark == mark {
			return i
		}
	}
	return -1
}

// MarkGroup returns the group for mark, if any.
func (t *Table) MarkGroup(mark uint32) (Mark, bool) {
	if i := t.markIndex(mark); i >= 0 {
		return t.Marks[i], true
	}
	return Mark{}, false
}
