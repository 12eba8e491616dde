package xdpprog

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// MaxLocalFlows is how many local-node connections one steering program
// passes to the kernel by itself. A connection that finds the map full is
// still served: its frames keep reaching the worker, which hands each to
// the kernel (see AllowLocal).
const MaxLocalFlows = 65536

// ErrLocalFull is AllowLocal's answer when the map holds MaxLocalFlows.
var ErrLocalFull = errors.New("local-node flow map full")

// LocalFlow is one local-node connection as the steering program matches
// it: the client's address and port, the VIP and its port, the protocol.
type LocalFlow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

func (f LocalFlow) String() string {
	return fmt.Sprintf("%s %s -> %s", ServiceKey{Proto: f.Proto}.String()[:3],
		netip.AddrPortFrom(f.Src, f.SrcPort), netip.AddrPortFrom(f.Dst, f.DstPort))
}

// localEntry is the flows map key as the program builds it on its stack:
// addresses and ports in network order, then the protocol and padding.
type localEntry struct {
	Src, Dst         [4]byte
	SrcPort, DstPort [2]byte
	Proto            uint8
	_                [3]byte
}

// LocalUse is what the program recorded for a local-node flow since the
// last ResetLocalUse: frames, their IP-layer bytes (the IPv4 total
// length), and the OR of the TCP flags bytes they carried.
type LocalUse struct {
	Pkts, Bytes uint64
	TCPFlags    uint32
	_           uint32
}

// localMaps are the steering program's local-node maps: flows (a hash of
// IPv4 LocalFlow keys, LocalUse values), flows6 (the same for IPv6 flows:
// localpass6.go) and on, a one-word array that gates both lookups so that
// a director with no local real server pays nothing for them but one
// inlined array read.
type localMaps struct {
	flows  *ebpf.Map
	flows6 *ebpf.Map
	on     *ebpf.Map
}

func newLocalMaps() (localMaps, error) {
	var l localMaps
	var err error
	l.flows, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_local",
		Type:       ebpf.Hash,
		KeySize:    16,
		ValueSize:  24,
		MaxEntries: MaxLocalFlows,
		// Elements are allocated as flows arrive, not up front: a
		// director without a local real server keeps none.
		Flags: unix.BPF_F_NO_PREALLOC,
	})
	if err != nil {
		return l, fmt.Errorf("create local-node flow map for %d flows: %w", MaxLocalFlows, err)
	}
	l.on, err = ebpf.NewMap(&ebpf.MapSpec{
		Name:       "afvs_local_on",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: 1,
	})
	if err != nil {
		l.flows.Close()
		l.flows = nil
		return l, fmt.Errorf("create local-node gate map: %w", err)
	}
	if l.flows6, err = newLocal6Map(); err != nil {
		l.flows.Close()
		l.on.Close()
		l.flows, l.on = nil, nil
		return l, err
	}
	return l, nil
}

// Stack slots of the local-node key and the frame's IPv4 total length.
const (
	slotLocal    = -64 // 16 bytes: localEntry
	slotLocalLen = -24 // 2 bytes (slotScratch): IPv4 total length, network order
)

// localLen keeps the IPv4 total length of every TCP/UDP frame for
// localUse: the flow key itself is built only once the local-node gate is
// found set (localPass). R9 points at the IPv4 header; it clobbers R1
// only.
func (b *builder) localLen() {
	b.emit(
		asm.LoadMem(asm.R1, asm.R9, 2, asm.Half),
		asm.StoreMem(asm.RFP, slotLocalLen, asm.R1, asm.Half),
	)
}

// localPass is the local-node check on the way to a redirect: when the
// gate is on and the frame (not a non-first fragment) belongs to a flow
// in the flows map, it adds the frame to the flow's LocalUse and returns
// XDP_PASS, counted as PassLocal; otherwise it goes on at next. It builds
// the flow key from the source key at slotSource (address and
// protocol), the destination address at slotKey and both ports at R9,
// which points at the transport header of a non-fragment. R6-R9 survive.
func (b *builder) localPass(l localMaps, next string) {
	b.localGate(l, next)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, slotKey+7, asm.Byte),
		asm.JNE.Imm(asm.R1, 0, next), // a non-first fragment: no ports
		asm.LoadMem(asm.R1, asm.RFP, slotSource, asm.Word),
		asm.StoreMem(asm.RFP, slotLocal, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotKey, asm.Word),
		asm.StoreMem(asm.RFP, slotLocal+4, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Word), // both ports
		asm.StoreMem(asm.RFP, slotLocal+8, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, slotSource+6, asm.Byte),
		asm.StoreMem(asm.RFP, slotLocal+12, asm.R1, asm.Byte),
		asm.StoreImm(asm.RFP, slotLocal+13, 0, asm.Byte),
		asm.StoreImm(asm.RFP, slotLocal+14, 0, asm.Half),
		asm.LoadMapPtr(asm.R1, l.flows.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, slotLocal),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, next),
	)
	b.localUse(slotLocal+12, 0, "local_done")
}

// localGate goes on at next unless the local-node gate (the on map) is
// set. It reads the one-entry array's value through its address, as
// blockGate does (blocklist.go). It clobbers R1.
func (b *builder) localGate(l localMaps, next string) {
	b.emit(
		asm.LoadMapValue(asm.R1, l.on.FD(), 0),
		asm.LoadMem(asm.R1, asm.R1, 0, asm.Word),
		asm.JEq.Imm(asm.R1, 0, next),
	)
}

// localUse adds the frame to the LocalUse R0 points at, a flow the map
// holds, and returns XDP_PASS counted as PassLocal: a frame, the IP
// length at slotLocalLen plus hdrLen in bytes (IPv6's payload length
// leaves out its 40-byte header), and, when the key's protocol byte at
// protoSlot says TCP, the frame's TCP flags. R9 points at the transport
// header.
func (b *builder) localUse(protoSlot int16, hdrLen int32, name string) {
	// Frames and bytes, atomically: a flow's frames may arrive on
	// several CPUs.
	b.emit(
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
		asm.LoadMem(asm.R1, asm.RFP, slotLocalLen, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
	)
	if hdrLen != 0 {
		b.emit(asm.Add.Imm(asm.R1, hdrLen))
	}
	b.emit(asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 8))
	// The TCP flags byte (offset 13) ORed in, with a plain load and store:
	// a flow's frames normally arrive on one queue (RSS hashes its
	// addresses and ports), and a flag lost to a race on two CPUs only
	// delays the state it reports. The header's 20 bytes were checked for
	// TCP, but the verifier is shown the bound again.
	done := b.fresh(name)
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, protoSlot, asm.Byte),
		asm.JNE.Imm(asm.R1, ipProtoTCP, done),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.Add.Imm(asm.R2, 14),
		asm.JGT.Reg(asm.R2, asm.R8, done),
		asm.LoadMem(asm.R2, asm.R9, 13, asm.Byte),
		asm.LoadMem(asm.R1, asm.R0, 16, asm.Word),
		asm.Or.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, 16, asm.R1, asm.Word),
	)
	b.label(done)
	b.count(steerPassLocal)
	b.ret(xdpPass)
}

func localKey(f LocalFlow) (localEntry, error) {
	src, dst := f.Src.Unmap(), f.Dst.Unmap()
	if !src.Is4() || !dst.Is4() {
		return localEntry{}, fmt.Errorf("local flow %s: addresses must be IPv4", f)
	}
	if f.Proto != ipProtoTCP && f.Proto != ipProtoUDP {
		return localEntry{}, fmt.Errorf("local flow %s: protocol %d must be 6 (tcp) or 17 (udp)", f, f.Proto)
	}
	return localEntry{
		Src: src.As4(), Dst: dst.As4(),
		SrcPort: [2]byte{byte(f.SrcPort >> 8), byte(f.SrcPort)},
		DstPort: [2]byte{byte(f.DstPort >> 8), byte(f.DstPort)},
		Proto:   f.Proto,
	}, nil
}

func (e localEntry) flow() LocalFlow {
	return LocalFlow{
		Src: netip.AddrFrom4(e.Src), Dst: netip.AddrFrom4(e.Dst),
		SrcPort: uint16(e.SrcPort[0])<<8 | uint16(e.SrcPort[1]),
		DstPort: uint16(e.DstPort[0])<<8 | uint16(e.DstPort[1]),
		Proto:   e.Proto,
	}
}

// zeroUse is a new flow's value; the kernel only reads it.
var zeroUse LocalUse

// SetLocal turns the local-node check on or off. Off, the program does
// not look at the flows map at all.
func (s *Steering) SetLocal(on bool) error {
	v := uint32(0)
	if on {
		v = 1
	}
	if err := s.local.on.Put(uint32(0), v); err != nil {
		return fmt.Errorf("set local-node gate: %w", err)
	}
	return nil
}

// AllowLocal makes the program pass f's frames to the kernel from now on
// (one bpf(2) map update). It returns ErrLocalFull, changing nothing, when
// the map holds MaxLocalFlows flows; a flow already present keeps its use.
func (s *Steering) AllowLocal(f LocalFlow) error {
	if is6(f) {
		return s.allowLocal6(f)
	}
	k := localKeys.Get().(*localEntry)
	defer localKeys.Put(k)
	var err error
	if *k, err = localKey(f); err != nil {
		return err
	}
	// Pointers, not values: cilium/ebpf then copies and marshals
	// nothing, and the key comes from a pool, so a worker's update
	// allocates nothing.
	return allowed(f, s.local.flows.Update(unsafe.Pointer(k), unsafe.Pointer(&zeroUse), ebpf.UpdateNoExist))
}

// allowed is AllowLocal's answer for f's map update, which returned err:
// a flow already present is allowed, a full map is ErrLocalFull.
func allowed(f LocalFlow, err error) error {
	switch {
	case err == nil, errors.Is(err, ebpf.ErrKeyExist):
		return nil
	case errors.Is(err, unix.E2BIG):
		return ErrLocalFull
	}
	return fmt.Errorf("allow local flow %s: %w", f, err)
}

// forgotten is ForgetLocal's answer for f's map delete, which returned
// err: a flow already gone is forgotten.
func forgotten(f LocalFlow, err error) error {
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget local flow %s: %w", f, err)
	}
	return nil
}

// localKeys holds the keys AllowLocal and ForgetLocal pass to bpf(2).
var localKeys = sync.Pool{New: func() any { return new(localEntry) }}

// ForgetLocal stops passing f; its frames reach the worker again. A flow
// not in the map is ignored.
func (s *Steering) ForgetLocal(f LocalFlow) error {
	if is6(f) {
		return s.forgetLocal6(f)
	}
	k := localKeys.Get().(*localEntry)
	defer localKeys.Put(k)
	var err error
	if *k, err = localKey(f); err != nil {
		return err
	}
	return forgotten(f, s.local.flows.Delete(unsafe.Pointer(k)))
}

// takeBatch is how many flows one BPF_MAP_LOOKUP_BATCH reads: far more
// than a hash bucket ever holds (a smaller batch than a bucket is
// refused with ENOSPC).
const takeBatch = 4096

// localTake is TakeLocalUse's scratch, kept for the next call.
type localTake struct {
	mu   sync.Mutex
	v4   takeScratch[localEntry]
	v6   takeScratch[localEntry6]
	seen []localItem
}

// takeScratch is one flow map's part of localTake.
type takeScratch[K any] struct {
	keys []K
	vals []LocalUse
	used []K
	zero []LocalUse
}

type localItem struct {
	f LocalFlow
	u LocalUse
}

// TakeLocalUse calls fn for every flow in the maps (IPv4 and IPv6) with
// its use since the last call, and resets the use of those that were
// used. It reads each map takeBatch flows per bpf(2) call and resets with
// one batch update. Frames the program counts between the read and the
// reset of a flow are lost to the report (the reset is a map update, not
// an atomic exchange); the flow's next frame reports it again. fn runs
// after the maps are read and reset, so it may call ForgetLocal;
// ForgetLocal must not run on another goroutine at the same time (see the
// reset).
func (s *Steering) TakeLocalUse(fn func(f LocalFlow, u LocalUse)) error {
	t := &s.take
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = t.seen[:0]
	if err := takeFrom(s.local.flows, &t.v4, localEntry.flow, &t.seen); err != nil {
		return err
	}
	if err := takeFrom(s.local.flows6, &t.v6, localEntry6.flow, &t.seen); err != nil {
		return err
	}
	for _, e := range t.seen {
		fn(e.f, e.u)
	}
	return nil
}

// takeFrom reads every flow of m into seen and resets the use of those
// that were used.
func takeFrom[K any](m *ebpf.Map, t *takeScratch[K], flow func(K) LocalFlow, seen *[]localItem) error {
	if t.keys == nil {
		t.keys, t.vals = make([]K, takeBatch), make([]LocalUse, takeBatch)
	}
	t.used = t.used[:0]
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, t.keys, t.vals, nil)
		for i := range n {
			*seen = append(*seen, localItem{flow(t.keys[i]), t.vals[i]})
			if t.vals[i] != (LocalUse{}) {
				t.used = append(t.used, t.keys[i])
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("list local flows: %w", err)
		}
	}
	for len(t.zero) < len(t.used) {
		t.zero = append(t.zero, LocalUse{})
	}
	// Batch updates take no BPF_EXIST (the kernel allows only
	// BPF_F_LOCK), so a flow ForgetLocal removed between the read and
	// this reset would come back: callers forget flows only from fn,
	// which runs after it, or from the same goroutine.
	if len(t.used) > 0 {
		if _, err := m.BatchUpdate(t.used, t.zero[:len(t.used)], nil); err != nil {
			return fmt.Errorf("reset local flow use: %w", err)
		}
	}
	return nil
}
