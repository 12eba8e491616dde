package xdpprog

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ServiceKey names one virtual service the steering program matches: an
// IPv4 VIP, a transport protocol (6 TCP, 17 UDP) and a port, where port 0
// means every port of that VIP and protocol. With Source it names a VS/NAT
// real server instead, whose frames (matched by source address, protocol
// and port) are redirected unless they are addressed to one of the
// director's own addresses; with Local it names such an address (Proto
// and Port unused), so that replies to the director's own connections to
// a real server (health checks) reach the kernel.
type ServiceKey struct {
	Addr   netip.Addr
	Proto  uint8
	Port   uint16
	Source bool
	Local  bool
}

func (k ServiceKey) String() string {
	if k.Local {
		return "local " + k.Addr.String()
	}
	if k.Source {
		return "source " + ServiceKey{Addr: k.Addr, Proto: k.Proto, Port: k.Port}.String()
	}
	name := fmt.Sprintf("proto-%d", k.Proto)
	switch k.Proto {
	case ipProtoTCP:
		name = "tcp"
	case ipProtoUDP:
		name = "udp"
	}
	return fmt.Sprintf("%s %s", name, netip.AddrPortFrom(k.Addr, k.Port))
}

// serviceEntry is the services map key exactly as the program builds it on
// its stack: 8 bytes, address and port in network order.
type serviceEntry struct {
	Addr  [4]byte
	Port  [2]byte
	Proto uint8
	Flags uint8
}

// flagAnyService marks the per-(addr, proto) key that non-first fragments
// match: they carry no ports, yet belong to some service on that VIP.
const flagAnyService = 1

// flagSource marks a VS/NAT real server's key, {saddr, sport, proto}, and
// flagLocal a director address, {addr, 0, 0}.
const (
	flagSource = 2
	flagLocal  = 4
)

// Steering counter slots. Every exit of the program counts exactly one
// outcome (Redirected, Blocked or a Pass* reason), so Total is their sum
// and has no slot: one counter update per frame fewer.
const (
	steerRedirected = iota
	steerFragments
	steerPassNotIPv4
	steerPassTruncated
	steerPassBadHeader
	steerPassNotL4
	steerPassNoService
	steerPassNoSocket
	steerPassOtherMAC
	steerPassLocal
	steerICMPErrors
	steerBlocked
	steerCounters
)

// MaxOwnerMACs is how many destination MACs a steering program redirects
// frames for: the interface's own and one the operator configures.
const MaxOwnerMACs = 2

// ownerEntry is one owner MAC as the program reads it from the owners map:
// the address in wire order, then a byte that is 1 when the slot is in use.
type ownerEntry struct {
	MAC  [6]byte
	Used uint8
	_    uint8
}

// StatsCounters are the steering program's counters summed over CPUs.
// Every frame is counted in exactly one of Redirected, Blocked or a Pass*
// reason, and Total is their sum: Total == Redirected + Blocked + Passed().
type StatsCounters struct {
	Total      uint64
	Redirected uint64 // handed to the AF_XDP socket of the receiving queue
	// Fragments are non-first IPv4 fragments and IPv6 fragments (first
	// or not) to a VIP, matched by the any-service key; they are also in
	// Redirected, PassOtherMAC or PassNoSocket (or, for IPv6, Blocked).
	// The worker forwards IPv4 fragments and drops IPv6 ones as
	// ipv6_fragment.
	Fragments     uint64
	PassNotIPv4   uint64 // ARP, other ethertypes, stacked VLANs
	PassTruncated uint64 // frame ends inside a header the program reads
	PassBadHeader uint64 // IPv4 version not 4 or IHL below 5; IPv6 version not 6
	PassNotL4     uint64 // IPv4 or IPv6 but neither TCP nor UDP (ICMP, ICMPv6 with NDP and MLD, IPv6 extension headers, ...)
	PassNoService uint64 // TCP/UDP to no configured (addr, proto, port)
	PassNoSocket  uint64 // matched, but no socket registered for the queue
	// PassOtherMAC: matched a service, but the destination MAC is none of
	// the owner MACs (a frame a switch flooded, broadcast, multicast).
	PassOtherMAC uint64
	// PassLocal: a frame of a local-node connection (AllowLocal), left
	// to the kernel stack so that the director's own socket gets it.
	PassLocal uint64
	// ICMPErrors are ICMP errors (destination unreachable, source quench,
	// time exceeded) and ICMPv6 errors (destination unreachable, packet
	// too big, time exceeded, parameter problem) to a VIP quoting a packet
	// from a service's VIP and port; they are also in Redirected, PassOtherMAC or PassNoSocket,
	// and the worker forwards them to the connection's real server.
	ICMPErrors uint64
	// Blocked: matched and for an owner MAC, but from a source in the
	// blocklist (see Block): dropped in XDP.
	Blocked uint64
}

// Passed is the number of frames left to the kernel stack. Every frame is
// counted in Total and in exactly one of Redirected, Blocked or a Pass*
// reason.
func (s StatsCounters) Passed() uint64 {
	return s.PassNotIPv4 + s.PassTruncated + s.PassBadHeader + s.PassNotL4 + s.PassNoService + s.PassNoSocket + s.PassOtherMAC + s.PassLocal
}

// Steering is the loaded steering program with its four maps. Its methods
// may be called from several goroutines; SetServices calls are serialised.
// Until SetOwnerMACs names at least one MAC it redirects nothing.
type Steering struct {
	loaded
	services    *ebpf.Map
	services6   *ebpf.Map // IPv6 services (steering6.go)
	owners      *ebpf.Map
	blocked     *ebpf.Map  // blocklist.go
	block6      blockMaps6 // blocklist6.go
	blockMu     sync.Mutex // guards prefix6 and gate
	prefix6     int        // the IPv6 block prefix; 0: DefaultBlockPrefix6
	gate        blockGate  // blocklist.go
	xsks        *xskTable
	maxServices int
	local       localMaps
	take        localTake // TakeLocalUse's scratch

	mu      sync.Mutex  // serialises SetServices, guards svcGate
	svcGate serviceGate // servicegate.go
}

// LoadSteering creates the maps and loads the steering program. The
// services map holds up to maxServices services (plus one any-service key
// per distinct VIP and protocol); the xsks map holds maxQueues sockets.
func LoadSteering(maxServices, maxQueues int) (*Steering, error) {
	if maxServices < 1 {
		return nil, fmt.Errorf("load steering: max services %d must be at least 1", maxServices)
	}
	if maxServices > 1<<24 {
		return nil, fmt.Errorf("load steering: max services %d must be at most %d", maxServices, 1<<24)
	}
	s := &Steering{maxServices: maxServices}
	err := s.load(maxQueues)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("load steering: %w", err)
	}
	return s, nil
}

func (s *Steering) load(maxQueues int) error {
	var err error
	if s.xsks, err = newXSKTable("afvs_xsks", maxQueues); err != nil {
		return err
	}
	if s.stats, err = newCounters("afvs_steer_st", steerCounters); err != nil {
		return err
	}
	s.services, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_services",
		Type:       ebpf.Hash,
		KeySize:    8,
		ValueSize:  4,
		MaxEntries: uint32(2 * s.maxServices),
	})
	if err != nil {
		return fmt.Errorf("create services map for %d services: %w", s.maxServices, err)
	}
	if s.services6, err = newServices6Map(s.maxServices); err != nil {
		return err
	}
	s.owners, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_owners",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  uint32(MaxOwnerMACs * 8),
		MaxEntries: 1,
	})
	if err != nil {
		return fmt.Errorf("create owner MAC map: %w", err)
	}
	if s.local, err = newLocalMaps(); err != nil {
		return err
	}
	if s.blocked, err = newBlocklist(); err != nil {
		return err
	}
	if s.block6, err = newBlockMaps6(); err != nil {
		return err
	}
	if s.gate.m, err = newBlockGate(); err != nil {
		return err
	}
	if s.svcGate.m, err = newServiceGate(); err != nil {
		return err
	}
	insns, err := steeringProgram(s.services, s.services6, s.owners, s.xsks.m, s.stats.m, s.local, s.gate.m, s.blocked, s.block6, s.svcGate.m)
	if err != nil {
		return err
	}
	s.prog, err = loadXDP("afvs_steer", insns)
	return err
}

// steeringProgram emits the classifier. Registers: R6 ctx, R7 data,
// R8 data_end, R9 the header being parsed. The lookup key is built at
// slotKey as {addr[4], port[2], proto, flags}.
func steeringProgram(services, services6, owners, xsks, stats *ebpf.Map, local localMaps, gate, blocked *ebpf.Map, block6 blockMaps6, svcGate *ebpf.Map) (asm.Instructions, error) {
	b := newBuilder()
	lookupAt := func(slot int32) {
		b.emit(
			asm.LoadMapPtr(asm.R1, services.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, slot),
			asm.FnMapLookupElem.Call(),
		)
	}
	lookup := func() { lookupAt(slotKey) }

	b.frameStartUncounted(stats, xdpPass, "truncated")
	b.emit(
		asm.Mov.Reg(asm.R9, asm.R7),
		asm.Add.Imm(asm.R9, ethLen),
		// One 802.1Q tag: skip it and read the inner ethertype.
		asm.JNE.Imm(asm.R3, be16(0x8100), "ethertype"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+vlanLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R7, ethLen+2, asm.Half),
		asm.Add.Imm(asm.R9, vlanLen),
	)
	b.label("ethertype")
	b.emit(
		asm.JEq.Imm(asm.R3, be16(0x86dd), "ipv6"),
		asm.JNE.Imm(asm.R3, be16(0x0800), "not_ipv4"),
		// Fixed IPv4 header present, version 4, IHL >= 5.
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, ipv4MinLen),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.LoadMem(asm.R3, asm.R9, ipOffVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "bad_header"),
		asm.And.Imm(asm.R3, 0x0f),
		asm.JLT.Imm(asm.R3, 5, "bad_header"),
		asm.LSh.Imm(asm.R3, 2), // header length in bytes, 20..60
		// TCP or UDP only.
		asm.LoadMem(asm.R5, asm.R9, ipOffProto, asm.Byte),
		asm.JEq.Imm(asm.R5, ipProtoTCP, "l4"),
		asm.JEq.Imm(asm.R5, ipProtoUDP, "l4"),
		asm.JNE.Imm(asm.R5, ipProtoICMP, "not_l4"),
		// ICMP from a VS/NAT real server (an error about a packet the
		// director sent it): {saddr, 0, 1, flagSource}, unless it is to
		// the director itself (slotKey holds the destination for that).
		// Any other ICMP message: the "icmp" block (steericmp.go).
		asm.LoadMem(asm.R4, asm.R9, ipOffSrc, asm.Word),
		asm.StoreMem(asm.RFP, slotSource, asm.R4, asm.Word),
		asm.StoreImm(asm.RFP, slotSource+4, 0, asm.Half),
		asm.StoreImm(asm.RFP, slotSource+6, ipProtoICMP, asm.Byte),
		asm.StoreImm(asm.RFP, slotSource+7, flagSource, asm.Byte),
		asm.LoadMem(asm.R4, asm.R9, ipOffDst, asm.Word),
		asm.StoreMem(asm.RFP, slotKey, asm.R4, asm.Word),
		asm.StoreMem(asm.RFP, slotSourceIHL, asm.R3, asm.DWord), // across the call
	)
	b.natGate(svcGate, gate4, "icmp") // keeps R3
	lookupAt(slotSource)
	b.emit(
		asm.LoadMem(asm.R3, asm.RFP, slotSourceIHL, asm.DWord),
		asm.JEq.Imm(asm.R0, 0, "icmp"),
		asm.Ja.Label("source"),
	)
	b.label("l4")
	b.emit(
		// Key: destination address, protocol, flags 0.
		asm.LoadMem(asm.R4, asm.R9, ipOffDst, asm.Word),
		asm.StoreMem(asm.RFP, slotKey, asm.R4, asm.Word),
		asm.StoreMem(asm.RFP, slotKey+6, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotKey+7, 0, asm.Byte),
	)
	b.localLen()
	b.emit(
		// The source key of a VS/NAT reply, {saddr, sport, proto,
		// flagSource}, kept at slotSource; the port comes below.
		asm.LoadMem(asm.R4, asm.R9, ipOffSrc, asm.Word),
		asm.StoreMem(asm.RFP, slotSource, asm.R4, asm.Word),
		asm.StoreMem(asm.RFP, slotSource+6, asm.R5, asm.Byte),
		asm.StoreImm(asm.RFP, slotSource+7, flagSource, asm.Byte),
		// Non-first fragments carry no ports.
		asm.LoadMem(asm.R4, asm.R9, ipOffFrag, asm.Half),
		asm.JSet.Imm(asm.R4, be16(0x1fff), "fragment"),
		// Transport header present: 20 bytes for TCP, 8 for UDP.
		asm.Add.Reg(asm.R9, asm.R3),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, udpLen),
		asm.JNE.Imm(asm.R5, ipProtoTCP, "l4_len"),
		asm.Add.Imm(asm.R2, tcpMinLen-udpLen),
	)
	b.label("l4_len")
	b.emit(
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		// Exact (addr, proto, port) first, then the all-ports service,
		// each only while the service gate has its port's bit
		// (servicegate.go).
		asm.LoadMem(asm.R4, asm.R9, l4OffDstPort, asm.Half),
		asm.StoreMem(asm.RFP, slotKey+4, asm.R4, asm.Half),
		asm.LoadMem(asm.R3, asm.R9, 0, asm.Half),
		asm.StoreMem(asm.RFP, slotSource+4, asm.R3, asm.Half),
	)
	b.gatedLookups(svcGate, gate4, portsDst, slotKey, 4, asm.R5, asm.R4, lookup, "match", "svc_any", "nat", asm.JNE.Imm(asm.R0, 0, "match"))
	// No service: a reply of a VS/NAT real server, by its source, exact
	// port first, then a real server on every port.
	b.label("nat")
	b.emit(
		asm.LoadMem(asm.R5, asm.RFP, slotSource+6, asm.Byte),
		asm.LoadMem(asm.R4, asm.RFP, slotSource+4, asm.Half),
	)
	b.gatedLookups(svcGate, gate4, portsSrc, slotSource, 4, asm.R5, asm.R4, func() { lookupAt(slotSource) },
		"source", "nat_any", "no_service", asm.JEq.Imm(asm.R0, 0, "no_service"))
	// ...unless it is addressed to the director itself: slotKey still
	// holds the destination address. With no director address in the
	// map, no lookup.
	b.label("source")
	b.emit(
		asm.StoreImm(asm.RFP, slotKey+4, 0, asm.Half),
		asm.StoreImm(asm.RFP, slotKey+6, 0, asm.Byte),
		asm.StoreImm(asm.RFP, slotKey+7, flagLocal, asm.Byte),
	)
	b.directorGate(svcGate, gate4, "match")
	lookup()
	b.emit(
		asm.JNE.Imm(asm.R0, 0, "no_service"),
		asm.Ja.Label("match"),
	)

	// Non-first fragment: the any-service key of this addr and protocol.
	// The whole IPv4 header, options included, must still be present.
	b.label("fragment")
	b.emit(
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.JGT.Reg(asm.R2, asm.R8, "truncated"),
		asm.StoreImm(asm.RFP, slotKey+4, 0, asm.Half),
		asm.StoreImm(asm.RFP, slotKey+7, flagAnyService, asm.Byte),
	)
	lookup()
	b.emit(asm.JEq.Imm(asm.R0, 0, "no_service"))
	b.count(steerFragments)

	// A matched frame is redirected only when its destination MAC is an
	// owner MAC: the one value of the owners array holds MaxOwnerMACs
	// slots of {mac[6], used, pad}. The frame's MAC is compared as a word
	// and a half-word loaded the same way from both sides, so no byte
	// order is involved.
	b.label("match")
	ownerCheck(b, owners, "owner")

	// Drop what the blocklist holds; redirect the rest to the socket of
	// the receiving queue, XDP_PASS if none.
	b.label("owner")
	b.localPass(local, "redirect")
	b.label("redirect")
	b.dropBlocked(gate, blocked, steerBlocked)
	b.label("xsk") // an IPv6 frame's redirect (steering6.go)
	b.emit(
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.LoadMem(asm.R2, asm.R6, xdpMdRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.JNE.Imm(asm.R7, xdpRedirect, "no_socket"),
	)
	b.count(steerRedirected)
	b.emit(asm.Mov.Reg(asm.R0, asm.R7), asm.Return())

	b.passWith("no_socket", steerPassNoSocket)
	b.passWith("other_mac", steerPassOtherMAC)
	b.passWith("no_service", steerPassNoService)
	b.passWith("not_ipv4", steerPassNotIPv4)
	b.passWith("truncated", steerPassTruncated)
	b.passWith("bad_header", steerPassBadHeader)
	b.passWith("not_l4", steerPassNotL4)
	steeringICMP(b, lookup, svcGate)
	steeringIPv6(b, services6, owners, local, gate, block6, svcGate)
	return b.finish()
}

// SetServices replaces the set of matched services: keys no longer wanted
// are deleted first, then the wanted ones are written, so a service present
// before and after is matched throughout. The map value of a service is its
// index in keys; the any-service key of a VIP and protocol carries the index
// of the first service on them.
func (s *Steering) SetServices(keys []ServiceKey) error {
	want := make(map[serviceEntry]uint32, 2*len(keys))
	want6 := map[serviceEntry6]uint32{}
	distinct := 0
	for i, k := range keys {
		addr := k.Addr.Unmap()
		if !addr.Is4() {
			e, err := entry6(i, k)
			if err != nil {
				return err
			}
			if _, dup := want6[e]; !dup {
				want6[e] = uint32(i)
				distinct++
			}
			if k.Source { // ICMPv6 errors from the real server's address
				ic := serviceEntry6{Addr: e.Addr, Proto: ipProtoICMPv6, Flags: flagSource}
				if _, dup := want6[ic]; !dup {
					want6[ic] = uint32(i)
				}
			} else if !k.Local { // fragments to the VIP, by protocol
				anyKey := serviceEntry6{Addr: e.Addr, Proto: e.Proto, Flags: flagAnyService}
				if _, dup := want6[anyKey]; !dup {
					want6[anyKey] = uint32(i)
				}
			}
			continue
		}
		if k.Local {
			e := serviceEntry{Addr: addr.As4(), Flags: flagLocal}
			if _, dup := want[e]; !dup {
				want[e] = uint32(i)
				distinct++
			}
			continue
		}
		if k.Proto != ipProtoTCP && k.Proto != ipProtoUDP {
			return fmt.Errorf("set services: service %d (%s): protocol %d must be 6 (tcp) or 17 (udp)", i, k, k.Proto)
		}
		e := serviceEntry{Addr: addr.As4(), Port: [2]byte{byte(k.Port >> 8), byte(k.Port)}, Proto: k.Proto}
		if k.Source {
			e.Flags = flagSource
		}
		if _, dup := want[e]; !dup {
			want[e] = uint32(i)
			distinct++
		}
		if k.Source {
			// ICMP errors from the real server's address.
			ic := serviceEntry{Addr: e.Addr, Proto: ipProtoICMP, Flags: flagSource}
			if _, dup := want[ic]; !dup {
				want[ic] = uint32(i)
			}
			continue
		}
		anyKey := serviceEntry{Addr: e.Addr, Proto: e.Proto, Flags: flagAnyService}
		if _, dup := want[anyKey]; !dup {
			want[anyKey] = uint32(i)
		}
	}
	if distinct > s.maxServices {
		return fmt.Errorf("set services: %d distinct services exceed the maximum of %d", distinct, s.maxServices)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// The service gate covers the map throughout (servicegate.go): it
	// opens to the old keys and the new before the map changes, and
	// narrows to the new ones only once the map holds just them.
	need := gateOf(want, want6)
	if err := s.svcGate.widen(need); err != nil {
		return err
	}
	if err := syncMap(s.services, want); err != nil {
		return err
	}
	if err := syncMap(s.services6, want6); err != nil {
		return err
	}
	// The new set is in force. A gate that cannot be narrowed stays wide,
	// which costs lookups that find nothing and misses no service; the
	// next call narrows it. So the call has done what it was asked.
	_ = s.svcGate.set(need)
	return nil
}

// syncMap makes m hold exactly want: the keys no longer wanted are deleted
// first, then the wanted ones written that m does not hold with the same
// value. A key m already holds so is left alone: rewriting it would
// replace its element, and a lookup racing the replacement can miss the
// key, so a frame of a service present throughout would reach the kernel.
func syncMap[K comparable](m *ebpf.Map, want map[K]uint32) error {
	var (
		stale []K
		same  = map[K]bool{}
		key   K
		val   uint32
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		if v, ok := want[key]; !ok {
			stale = append(stale, key)
		} else if v == val {
			same[key] = true
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("set services: list current services: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("set services: delete %v: %w", k, err)
		}
	}
	for k, v := range want {
		if same[k] {
			continue
		}
		if err := m.Put(k, v); err != nil {
			return fmt.Errorf("set services: add %v: %w", k, err)
		}
	}
	return nil
}

// SetOwnerMACs sets the destination MACs whose frames may be redirected:
// the interface's own and, optionally, one more the operator configured
// for the VIP (a VRRP virtual MAC, say). A frame that matches a service
// but is addressed to any other MAC - one a switch flooded because it has
// not learnt where that MAC lives, a broadcast, a multicast - passes to
// the kernel, which drops frames not for the host, so a director never
// forwards traffic meant for another. Each MAC must be unicast and not
// all zeros; duplicates count once. A refused call changes nothing; an
// empty list stops all redirection.
func (s *Steering) SetOwnerMACs(macs ...[6]byte) error {
	var v [MaxOwnerMACs]ownerEntry
	n := 0
	for i, m := range macs {
		if m == ([6]byte{}) {
			return fmt.Errorf("set owner MACs: MAC %d is all zeros: must be a unicast Ethernet address", i)
		}
		if m[0]&1 != 0 {
			return fmt.Errorf("set owner MACs: MAC %d (%s) is a group (multicast or broadcast) address: must be unicast", i, net.HardwareAddr(m[:]))
		}
		if slices.ContainsFunc(v[:n], func(e ownerEntry) bool { return e.MAC == m }) {
			continue
		}
		if n == MaxOwnerMACs {
			return fmt.Errorf("set owner MACs: %d distinct MACs: at most %d (the interface's own and one configured)", n+1, MaxOwnerMACs)
		}
		v[n] = ownerEntry{MAC: m, Used: 1}
		n++
	}
	if err := s.owners.Put(uint32(0), v); err != nil {
		return fmt.Errorf("set owner MACs: %w", err)
	}
	return nil
}

// RegisterSocket makes frames matched on RX queue queue go to the AF_XDP
// socket fd. The socket must be bound to that queue of the interface the
// program is attached to, or the kernel drops what it redirects.
func (s *Steering) RegisterSocket(queue int, fd int) error {
	return s.xsks.register(queue, fd)
}

// UnregisterSocket stops redirecting on queue; its matched frames then go
// to the kernel stack. An out-of-range or empty queue is ignored.
func (s *Steering) UnregisterSocket(queue int) {
	_ = s.xsks.unregister(queue)
}

// Stats reads the counters summed over CPUs.
func (s *Steering) Stats() (StatsCounters, error) {
	v, err := s.stats.read()
	if err != nil {
		return StatsCounters{}, fmt.Errorf("steering stats: %w", err)
	}
	st := StatsCounters{
		Redirected:    v[steerRedirected],
		Fragments:     v[steerFragments],
		PassNotIPv4:   v[steerPassNotIPv4],
		PassTruncated: v[steerPassTruncated],
		PassBadHeader: v[steerPassBadHeader],
		PassNotL4:     v[steerPassNotL4],
		PassNoService: v[steerPassNoService],
		PassNoSocket:  v[steerPassNoSocket],
		PassOtherMAC:  v[steerPassOtherMAC],
		PassLocal:     v[steerPassLocal],
		ICMPErrors:    v[steerICMPErrors],
		Blocked:       v[steerBlocked],
	}
	st.Total = st.Redirected + st.Blocked + st.Passed()
	return st, nil
}

// Close unloads the program and its maps. Attachments hold their own
// reference to the program and stay in effect until closed.
func (s *Steering) Close() error {
	s.blockMu.Lock()
	s.gate.close()
	s.blockMu.Unlock()
	return s.close(s.services, s.services6, s.owners, s.blocked, s.block6.blocked, s.block6.mask, s.gate.m, s.xsks.mapOrNil(), s.local.flows, s.local.flows6, s.local.on, s.svcGate.m)
}
