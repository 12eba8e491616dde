package nic

import (
	"fmt"
	"strconv"
	"strings"
)

// maxCPU bounds CPU numbers to what a unix.CPUSet (and the kernel's default
// NR_CPUS on distributions) can hold.
const maxCPU = 1024

// parseCPUList parses the kernel's cpulist format ("0-3,8,10-11"), as found
// in /proc/irq/N/smp_affinity_list, into ascending CPU numbers.
func parseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("cpu list is empty")
	}
	var seen [maxCPU]bool
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("cpu list %q: range %s ends before it starts", s, part)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	var cpus []int
	for c, ok := range seen {
		if ok {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func parseCPU(s string) (int, error) {
	c, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("cpu %q is not a number", s)
	}
	if c < 0 || c >= maxCPU {
		return 0, fmt.Errorf("cpu %d is outside 0-%d", c, maxCPU-1)
	}
	return c, nil
}

// formatCPUList renders ascending CPU numbers in cpulist format, so reasons
// read like the kernel's own files.
func formatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}
