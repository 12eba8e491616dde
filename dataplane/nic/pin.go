package nic

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Pin restricts the calling OS thread to cpu. The caller must have called
// runtime.LockOSThread; otherwise the Go scheduler may move the goroutine to
// another thread and the pinning would apply to a thread it no longer runs on.
func Pin(cpu int) error {
	if cpu < 0 || cpu >= maxCPU {
		return fmt.Errorf("pin to cpu %d: cpu must be in 0-%d", cpu, maxCPU-1)
	}
	var set unix.CPUSet
	set.Set(cpu)
	// pid 0 is the calling thread, not the whole process.
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin to cpu %d: sched_setaffinity: %w", cpu, err)
	}
	return nil
}
