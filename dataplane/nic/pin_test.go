package nic

import (
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPin(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	// Leaving the thread locked on return makes the runtime discard it, so
	// its narrowed affinity never leaks into other goroutines.
	target := allowed[len(allowed)-1]
	if err := Pin(target); err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(target) {
		t.Errorf("after Pin(%d) the thread may run on %d cpus, cpu %d set: %v", target, set.Count(), target, set.IsSet(target))
	}
	// A CPU that does not exist is the kernel's to refuse, not a panic.
	if err := Pin(1000); err == nil || !strings.Contains(err.Error(), "pin to cpu 1000: sched_setaffinity") {
		t.Errorf("Pin(1000) on a %d-cpu machine = %v, want a sched_setaffinity error", runtime.NumCPU(), err)
	}

	for cpu, want := range map[int]string{-1: "pin to cpu -1: cpu must be in 0-1023", 1024: "pin to cpu 1024: cpu must be in 0-1023"} {
		if err := Pin(cpu); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Pin(%d) = %v, want %q", cpu, err, want)
		}
	}
}
