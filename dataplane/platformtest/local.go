package platformtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/dataplane/director"
	"github.com/afvs/afvs/dataplane/xdpprog"
	"github.com/afvs/afvs/internal/header"
)

// localFlows is the fake steering program's local-node state: the gate,
// the passed flows with their use, and the map's size.
type localFlows struct {
	on    bool
	flows map[xdpprog.LocalFlow]*xdpprog.LocalUse
}

// hostLocal is a host's own-stack path: what was delivered to it, an
// optional handler, whether one is open, and the flow map size its
// steering programs get.
type hostLocal struct {
	open    bool
	inbox   [][]byte
	handler func(pkt []byte)
	limit   int // 0: xdpprog.MaxLocalFlows
	fail    error
}

// SetLocalLimit makes the flow map of steering programs loaded from now
// on hold n flows instead of xdpprog.MaxLocalFlows.
func (h *Host) SetLocalLimit(n int) {
	h.mu.Lock()
	h.local.limit = n
	h.mu.Unlock()
}

// FailLocal makes OpenLocal fail with err (nil: succeed again).
func (h *Host) FailLocal(err error) {
	h.mu.Lock()
	h.local.fail = err
	h.mu.Unlock()
}

// HandleLocal makes fn receive every packet delivered to the host's own
// stack from now on; nil collects them for LocalRecv again.
func (h *Host) HandleLocal(fn func(pkt []byte)) {
	h.mu.Lock()
	h.local.handler = fn
	h.mu.Unlock()
}

// LocalRecv returns and forgets the IPv4 packets delivered to the host's
// own stack through OpenLocal since the last call.
func (h *Host) LocalRecv() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.local.inbox
	h.local.inbox = nil
	return out
}

// OpenLocal implements director.Platform: one path per host at a time.
func (h *Host) OpenLocal() (director.LocalStack, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.local.fail != nil {
		return nil, h.local.fail
	}
	if h.local.open {
		return nil, errors.New("local node: the host's local path is open already")
	}
	h.local.open = true
	h.sockets++
	return &localStack{h: h}, nil
}

type localStack struct {
	h      *Host
	closed bool
}

func (l *localStack) Deliver(pkt []byte) error {
	h := l.h
	h.mu.Lock()
	if l.closed {
		h.mu.Unlock()
		return errors.New("deliver: closed")
	}
	b := append([]byte(nil), pkt...)
	fn := h.local.handler
	if fn == nil {
		h.local.inbox = append(h.local.inbox, b)
	}
	h.mu.Unlock()
	if fn != nil {
		fn(b)
	}
	return nil
}

func (l *localStack) Name() string { return "afvsl0" }

func (l *localStack) Close() error {
	h := l.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !l.closed {
		l.closed = true
		h.local.open = false
		h.sockets--
	}
	return nil
}

func (s *steering) SetLocal(on bool) error {
	s.mu.Lock()
	s.local.on = on
	s.mu.Unlock()
	return nil
}

func (s *steering) AllowLocal(f xdpprog.LocalFlow) error {
	if f.Src.Is4() != f.Dst.Is4() || f.Src.Is4In6() || f.Dst.Is4In6() || (f.Proto != 6 && f.Proto != 17) {
		return fmt.Errorf("local flow %s: must be IPv4 or IPv6 TCP or UDP", f)
	}
	s.host.mu.Lock()
	limit := s.host.local.limit
	s.host.mu.Unlock()
	if limit == 0 {
		limit = xdpprog.MaxLocalFlows
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local.flows == nil {
		s.local.flows = map[xdpprog.LocalFlow]*xdpprog.LocalUse{}
	}
	if _, ok := s.local.flows[f]; ok {
		return nil
	}
	if len(s.local.flows) >= limit {
		return xdpprog.ErrLocalFull
	}
	s.local.flows[f] = new(xdpprog.LocalUse)
	return nil
}

func (s *steering) ForgetLocal(f xdpprog.LocalFlow) error {
	s.mu.Lock()
	delete(s.local.flows, f)
	s.mu.Unlock()
	return nil
}

func (s *steering) TakeLocalUse(fn func(f xdpprog.LocalFlow, u xdpprog.LocalUse)) error {
	s.mu.Lock()
	type item struct {
		f xdpprog.LocalFlow
		u xdpprog.LocalUse
	}
	var seen []item
	for f, u := range s.local.flows {
		seen = append(seen, item{f, *u})
		*u = xdpprog.LocalUse{}
	}
	s.mu.Unlock()
	for _, e := range seen {
		fn(e.f, e.u)
	}
	return nil
}

// passLocal6 is the program's local-node check for an IPv6 frame: ip its
// IPv6 header, l4 its TCP or UDP header. s.mu is held.
func (s *steering) passLocal6(ip header.IPv6, l4 []byte, proto uint8) bool {
	if !s.local.on || len(s.local.flows) == 0 {
		return false
	}
	f := xdpprog.LocalFlow{Src: netip.AddrFrom16(ip.Src()), Dst: netip.AddrFrom16(ip.Dst()),
		SrcPort: binary.BigEndian.Uint16(l4[0:2]), DstPort: binary.BigEndian.Uint16(l4[2:4]), Proto: proto}
	u, ok := s.local.flows[f]
	if !ok {
		return false
	}
	u.Pkts++
	u.Bytes += uint64(header.IPv6Len) + uint64(ip.PayloadLength())
	if proto == 6 && len(l4) >= 14 {
		u.TCPFlags |= uint32(l4[13])
	}
	return true
}

// passLocal is the program's local-node check; s.mu is held.
func (s *steering) passLocal(h header.IPv4, l4 []byte) bool {
	if !s.local.on || len(s.local.flows) == 0 || len(l4) < 4 {
		return false
	}
	f := xdpprog.LocalFlow{Src: netip.AddrFrom4(h.Src()), Dst: netip.AddrFrom4(h.Dst()),
		SrcPort: binary.BigEndian.Uint16(l4[0:2]), DstPort: binary.BigEndian.Uint16(l4[2:4]), Proto: h.Protocol()}
	u, ok := s.local.flows[f]
	if !ok {
		return false
	}
	u.Pkts++
	u.Bytes += uint64(h.TotalLength())
	if f.Proto == 6 && len(l4) >= 14 {
		u.TCPFlags |= uint32(l4[13])
	}
	return true
}
