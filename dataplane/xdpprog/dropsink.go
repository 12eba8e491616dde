package xdpprog

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

const (
	sinkPackets = iota
	sinkBytes
	sinkCounters
)

// DropSinkStats are the drop sink's counters summed over CPUs.
type DropSinkStats struct {
	Packets uint64
	Bytes   uint64 // frame bytes as XDP sees them: from the Ethernet header, no FCS
}

// DropSink counts and drops every frame at the earliest point the kernel
// offers. On a benchmark's receiving end it measures the offered load: no
// forwarder can deliver more than the sink counts.
type DropSink struct {
	loaded
}

// LoadDropSink loads the counting XDP_DROP program.
func LoadDropSink() (*DropSink, error) {
	d := &DropSink{}
	var err error
	if d.stats, err = newCounters("afvs_sink_st", sinkCounters); err != nil {
		return nil, fmt.Errorf("load drop sink: %w", err)
	}
	b := newBuilder()
	b.emit(asm.Mov.Reg(asm.R6, asm.R1))
	b.loadCounters(d.stats.m, xdpDrop)
	b.emit(
		// Length including any fragments of a multi-buffer frame.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnXdpGetBuffLen.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
	)
	b.count(sinkPackets)
	b.countReg(sinkBytes, asm.R7)
	b.ret(xdpDrop)
	insns, err := b.finish()
	if err == nil {
		d.prog, err = loadXDP("afvs_dropsink", insns)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("load drop sink: %w", err)
	}
	return d, nil
}

// Stats reads the counters summed over CPUs.
func (d *DropSink) Stats() (DropSinkStats, error) {
	v, err := d.stats.read()
	if err != nil {
		return DropSinkStats{}, fmt.Errorf("drop sink stats: %w", err)
	}
	return DropSinkStats{Packets: v[sinkPackets], Bytes: v[sinkBytes]}, nil
}

// Close unloads the program and its map; attachments stay until closed.
func (d *DropSink) Close() error { return d.close() }
