package xdpprog

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// counters is a PERCPU_ARRAY with a single slot holding a block of n
// uint64 event counters. A program looks its CPU's block up once per frame
// and then increments fields in place, without atomics, because no other
// CPU writes that copy. read sums the copies, so a snapshot is exact per
// counter but not taken at one instant across counters.
type counters struct {
	m *ebpf.Map
	n int
}

func newCounters(name string, n int) (*counters, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       name,
		Type:       ebpf.PerCPUArray,
		KeySize:    4,
		ValueSize:  uint32(8 * n),
		MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create counter map %s: %w", name, err)
	}
	return &counters{m: m, n: n}, nil
}

// read returns every counter summed over all possible CPUs.
func (c *counters) read() ([]uint64, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.m, err)
	}
	perCPU := make([][]uint64, cpus)
	for i := range perCPU {
		perCPU[i] = make([]uint64, c.n)
	}
	if err := c.m.Lookup(uint32(0), perCPU); err != nil {
		return nil, fmt.Errorf("read %s: %w", c.m, err)
	}
	out := make([]uint64, c.n)
	for _, block := range perCPU {
		for i, v := range block {
			out[i] += v
		}
	}
	return out, nil
}
