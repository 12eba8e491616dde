package xdpprog

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The service gate. Before it passes a TCP or UDP frame to no virtual
// service - the host's own traffic: ssh, BGP, DNS replies - to the
// kernel, the steering program has four keys to look up in the services
// hash map: {daddr, dport, proto}, {daddr, 0, proto}, then the VS/NAT
// reply keys {saddr, sport, proto, flagSource} and {saddr, 0, proto,
// flagSource}; an ICMP message has one more, {saddr, 0, ICMP,
// flagSource}, an ICMP error two more for its quote, a VS/NAT reply the
// director address {daddr, 0, 0, flagLocal}. Most of them cannot match:
// the Go side knows, when it writes the map, which ports and which kinds
// of key it holds.
//
// So the program first reads a one-entry array, through its value's
// address as for the blocklist gate (no lookup), that says per family
// (IPv4, IPv6) whether the map holds any VS/NAT real server (its ICMP key)
// and any director address ({addr, 0, 0, flagLocal}), and holds per
// family, protocol (TCP, UDP) and direction a bitmap of the 65536 ports:
// the ports of the services ("dst", the frame's destination port, or the
// quoted source port of an ICMP error) and the ports of the VS/NAT real
// servers ("src", the frame's source port), bit 0 standing for the
// all-ports keys (port 0). A lookup whose bit or word is clear is skipped:
// no key it could find is in the map. A port's bit is indexed by the two
// wire bytes of the port read as a native-endian half-word, which is what
// the program's half-word load yields, so neither side swaps bytes.
// Fragment keys (flagAnyService) are not gated: fragments are rare.
//
// SetServices keeps the gate a cover of the map, under mu: before it
// changes the map it widens the gate to what the map holds now and what
// it will hold (the union), so a key is never in the map while its bit is
// clear and a service added is matched from the first frame after
// SetServices returns; once every stale key is deleted and every new one
// written, it narrows the gate to exactly the new set. A call that fails
// half-way leaves the wide gate, which covers whatever the map then holds.
// A frame read against a narrower gate than the map's keys would miss a
// service; a wider gate only costs a lookup that finds nothing.

// Directions of a port bitmap.
const (
	portsDst = iota // services: a frame's destination port
	portsSrc        // VS/NAT real servers: a frame's source port
	portDirs
)

// portBitmapLen is the size of one bitmap: a bit per port.
const portBitmapLen = 1 << 16 / 8

// serviceGateValue is the gate array's one value, as the program reads
// it.
type serviceGateValue struct {
	NAT   [gates]uint32 // per family: the map holds a VS/NAT real server
	Local [gates]uint32 // per family: the map holds a director address
	// Ports by family, protocol (TCP, then UDP: protoIndex) and
	// direction.
	Ports [gates][2][portDirs][portBitmapLen]byte
}

// Offsets of the value's fields, for the program.
const (
	gateOffNAT   = 0
	gateOffLocal = 4 * gates
	gateOffPorts = 8 * gates
	// gateProtoShift: protoIndex(proto) << gateProtoShift is the distance
	// from a TCP bitmap to the UDP one of the same family and direction.
	gateProtoShift = 14
)

// protoIndex is the index of TCP (6) or UDP (17) in the bitmaps: the
// program computes it as proto>>4 & 1.
func protoIndex(proto uint8) int { return int(proto>>4) & 1 }

// portIndex is the bit of a port in wire order.
func portIndex(p [2]byte) uint16 { return binary.NativeEndian.Uint16(p[:]) }

func (v *serviceGateValue) setPort(family int, proto uint8, dir int, p [2]byte) {
	i := portIndex(p)
	v.Ports[family][protoIndex(proto)][dir][i/8] |= 1 << (i % 8)
}

// add opens what the map key of family, with the given address-less
// fields, needs.
func (v *serviceGateValue) add(family int, port [2]byte, proto, flags uint8) {
	switch {
	case flags == 0:
		v.setPort(family, proto, portsDst, port)
	case flags == flagSource && (proto == ipProtoICMP || proto == ipProtoICMPv6):
		v.NAT[family] = 1
	case flags == flagSource:
		v.setPort(family, proto, portsSrc, port)
	case flags == flagLocal:
		v.Local[family] = 1
	}
}

// union sets in v everything set in o.
func (v *serviceGateValue) union(o *serviceGateValue) {
	for f := range gates {
		v.NAT[f] |= o.NAT[f]
		v.Local[f] |= o.Local[f]
		for p := range v.Ports[f] {
			for d := range v.Ports[f][p] {
				for i, b := range o.Ports[f][p][d] {
					v.Ports[f][p][d][i] |= b
				}
			}
		}
	}
}

// serviceGate is the gate map and what it holds; Steering.mu guards it.
type serviceGate struct {
	m  *ebpf.Map
	on *serviceGateValue // what m holds; nil until the first write (all clear)
}

func newServiceGate() (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_svc_gate",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  uint32(unsafe.Sizeof(serviceGateValue{})),
		MaxEntries: 1, // a direct value pointer needs a single entry
	})
	if err != nil {
		return nil, fmt.Errorf("create service gate map: %w", err)
	}
	return m, nil
}

// gateOf is the gate that covers exactly the keys of want and want6.
func gateOf(want map[serviceEntry]uint32, want6 map[serviceEntry6]uint32) *serviceGateValue {
	v := new(serviceGateValue)
	for e := range want {
		v.add(gate4, e.Port, e.Proto, e.Flags)
	}
	for e := range want6 {
		v.add(gate6, e.Port, e.Proto, e.Flags)
	}
	return v
}

// set writes v into the map unless it holds it already. The caller holds
// Steering.mu.
func (g *serviceGate) set(v *serviceGateValue) error {
	if g.on != nil && *g.on == *v || g.on == nil && *v == (serviceGateValue{}) {
		return nil
	}
	if err := g.m.Put(uint32(0), unsafe.Pointer(v)); err != nil {
		return fmt.Errorf("set services: write the service gate: %w", err)
	}
	g.on = v
	return nil
}

// widen sets the gate to what it holds and v: before the map changes.
func (g *serviceGate) widen(v *serviceGateValue) error {
	w := *v
	if g.on != nil {
		w.union(g.on)
	}
	return g.set(&w)
}

// gateWord jumps to skip while the word at off of the gate value is 0.
// It clobbers R1.
func (b *builder) gateWord(gate *ebpf.Map, off uint32, skip string) {
	b.emit(
		asm.LoadMapValue(asm.R1, gate.FD(), off),
		asm.LoadMem(asm.R1, asm.R1, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, skip),
	)
}

// natGate jumps to skip unless the map holds a VS/NAT real server of
// family; directorGate unless it holds a director address of family.
// They clobber R1.
func (b *builder) natGate(gate *ebpf.Map, family int, skip string) {
	b.gateWord(gate, gateOffNAT+4*uint32(family), skip)
}

func (b *builder) directorGate(gate *ebpf.Map, family int, skip string) {
	b.gateWord(gate, gateOffLocal+4*uint32(family), skip)
}

// portGate jumps to skip unless the bit of the port in register port (as
// a half-word load from the packet yields it) is set in the bitmap of
// family, dir and the protocol in register proto (6 or 17). It clobbers
// R1 and R2 and leaves port and proto (neither R1 nor R2) alone.
func (b *builder) portGate(gate *ebpf.Map, family, dir int, proto, port asm.Register, skip string) {
	b.bitmapByte(gate, family, dir, proto, port)
	b.emit(
		asm.Mov.Reg(asm.R2, port),
		asm.And.Imm(asm.R2, 7),
		asm.RSh.Reg(asm.R1, asm.R2),
		asm.And.Imm(asm.R1, 1),
		asm.JEq.Imm(asm.R1, 0, skip),
	)
}

// port0Gate jumps to skip unless bit 0, the all-ports keys', is set in
// the bitmap of family, dir and the protocol in register proto. It
// clobbers R1 and R2.
func (b *builder) port0Gate(gate *ebpf.Map, family, dir int, proto asm.Register, skip string) {
	b.bitmapByte(gate, family, dir, proto, 0)
	b.emit(
		asm.And.Imm(asm.R1, 1),
		asm.JEq.Imm(asm.R1, 0, skip),
	)
}

// bitmapByte loads into R1 the byte of the bitmap of family, dir and the
// protocol in register proto that holds the bit of the port in register
// port, or of port 0 when port is R0 (R0 itself is not read). The byte's
// offset is bounded for the verifier: the protocol's index by a mask to 0
// or 1, the port's byte to 0..8191 by the port's half-word load (from the
// packet or the stack), which leaves the upper bits clear. It clobbers R1
// and R2.
func (b *builder) bitmapByte(gate *ebpf.Map, family, dir int, proto, port asm.Register) {
	base := uint32(gateOffPorts + (family*2*portDirs+dir)*portBitmapLen)
	b.emit(
		asm.Mov.Reg(asm.R1, proto),
		asm.RSh.Imm(asm.R1, 4),
		asm.And.Imm(asm.R1, 1),
		asm.LSh.Imm(asm.R1, gateProtoShift),
	)
	if port != asm.R0 {
		b.emit(
			asm.Mov.Reg(asm.R2, port),
			asm.RSh.Imm(asm.R2, 3),
			asm.Add.Reg(asm.R1, asm.R2),
		)
	}
	b.emit(
		asm.LoadMapValue(asm.R2, gate.FD(), base),
		asm.Add.Reg(asm.R2, asm.R1),
		asm.LoadMem(asm.R1, asm.R2, 0, asm.Byte),
	)
}

// gatedLookups emits the two services-map lookups of the key at slot on
// the stack whose port, the half-word at slot+portOff, is in register
// port and whose protocol, the byte after it, is in register proto: the
// exact key while the gate's bitmap of family and dir has the port's bit,
// jumping to hit when it is found; then, at label anyPort, with the key's
// port zeroed, the all-ports key while the bitmap has bit 0, which jumps
// to miss when the gate is clear. lookup emits one lookup of the key,
// leaving its result in R0; last is the instruction that ends the second
// lookup (a jump on R0). It clobbers R0-R5.
func (b *builder) gatedLookups(gate *ebpf.Map, family, dir int, slot, portOff int16, proto, port asm.Register, lookup func(), hit, anyPort, miss string, last asm.Instruction) {
	b.portGate(gate, family, dir, proto, port, anyPort)
	lookup()
	b.emit(asm.JNE.Imm(asm.R0, 0, hit))
	b.label(anyPort)
	b.emit(asm.LoadMem(asm.R5, asm.RFP, slot+portOff+2, asm.Byte))
	b.port0Gate(gate, family, dir, asm.R5, miss)
	b.emit(asm.StoreImm(asm.RFP, slot+portOff, 0, asm.Half))
	lookup()
	b.emit(last)
}
