package xdpprog

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

const (
	redirTotal = iota
	redirRedirected
	redirPassOther
	redirPassNoSocket
	redirCounters
)

// RedirectAllStats are the redirect-all program's counters summed over
// CPUs; Total == Redirected + PassOther + PassNoSocket.
type RedirectAllStats struct {
	Total      uint64
	Redirected uint64
	// PassOther is neither an untagged IPv4 frame nor an untagged IPv6
	// frame whose first next header is UDP: ARP, neighbour discovery and
	// MLD keep working.
	PassOther    uint64
	PassNoSocket uint64 // no socket registered for the receiving queue
}

// RedirectAll sends every untagged IPv4 frame, and every untagged IPv6
// frame that carries UDP right after its fixed header, to the AF_XDP
// socket of its queue without looking further. It feeds the plain
// MAC-swapping forwarder that benchmarks use as a baseline: the same rings
// and the same path as the director, with none of its work. ICMPv6 stays
// with the kernel, so neighbour discovery is not swallowed.
type RedirectAll struct {
	loaded
	xsks *xskTable
}

// LoadRedirectAll loads the program with an xsks map for maxQueues queues.
func LoadRedirectAll(maxQueues int) (*RedirectAll, error) {
	r := &RedirectAll{}
	if err := r.load(maxQueues); err != nil {
		r.Close()
		return nil, fmt.Errorf("load redirect-all: %w", err)
	}
	return r, nil
}

func (r *RedirectAll) load(maxQueues int) error {
	var err error
	if r.xsks, err = newXSKTable("afvs_xsks_all", maxQueues); err != nil {
		return err
	}
	if r.stats, err = newCounters("afvs_redir_st", redirCounters); err != nil {
		return err
	}
	st := r.stats.m
	b := newBuilder()
	b.frameStart(st, xdpPass, redirTotal, "other")
	b.emit(
		// Untagged IPv4, or untagged IPv6 with UDP as its next header.
		asm.JEq.Imm(asm.R3, be16(0x0800), "redirect"),
		asm.JNE.Imm(asm.R3, be16(0x86dd), "other"),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, ethLen+ipv6Len),
		asm.JGT.Reg(asm.R2, asm.R8, "other"),
		asm.LoadMem(asm.R3, asm.R7, ethLen+ip6OffNext, asm.Byte),
		asm.JNE.Imm(asm.R3, ipProtoUDP, "other"),
	)
	b.label("redirect")
	b.emit(
		// Socket of the receiving queue, XDP_PASS if none.
		asm.LoadMapPtr(asm.R1, r.xsks.m.FD()),
		asm.LoadMem(asm.R2, asm.R6, xdpMdRxQueueIndex, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.JNE.Imm(asm.R7, xdpRedirect, "no_socket"),
	)
	b.count(redirRedirected)
	b.emit(asm.Mov.Reg(asm.R0, asm.R7), asm.Return())
	b.passWith("no_socket", redirPassNoSocket)
	b.passWith("other", redirPassOther)
	insns, err := b.finish()
	if err != nil {
		return err
	}
	r.prog, err = loadXDP("afvs_redir_all", insns)
	return err
}

// RegisterSocket sends frames received on queue to the AF_XDP socket fd.
func (r *RedirectAll) RegisterSocket(queue int, fd int) error {
	return r.xsks.register(queue, fd)
}

// UnregisterSocket stops redirecting on queue; out-of-range queues are
// ignored.
func (r *RedirectAll) UnregisterSocket(queue int) {
	_ = r.xsks.unregister(queue)
}

// Stats reads the counters summed over CPUs.
func (r *RedirectAll) Stats() (RedirectAllStats, error) {
	v, err := r.stats.read()
	if err != nil {
		return RedirectAllStats{}, fmt.Errorf("redirect-all stats: %w", err)
	}
	return RedirectAllStats{
		Total:        v[redirTotal],
		Redirected:   v[redirRedirected],
		PassOther:    v[redirPassOther],
		PassNoSocket: v[redirPassNoSocket],
	}, nil
}

// Close unloads the program and its maps; attachments stay until closed.
func (r *RedirectAll) Close() error { return r.close(r.xsks.mapOrNil()) }
