package nic

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Assignment says which CPU the worker of RX queue Queue should run on, and
// which rule chose it, for the log.
type Assignment struct {
	Queue  int
	CPU    int
	Reason string
}

// Planner decides queue-to-CPU pinning from procfs and sysfs. The roots are
// fields so that tests can point them at fixture trees.
type Planner struct {
	// Proc is the procfs root; "" means "/proc".
	Proc string
	// Sys is the sysfs root; "" means "/sys". Set it to a directory without
	// class/net/DEV for a device that sysfs does not show (another namespace).
	Sys string
	// Allowed lists the CPUs the process may run on, ascending; nil means
	// ask sched_getaffinity.
	Allowed []int
	// Kind names the device type in reasons when the device has no per-queue
	// IRQ (the netlink link type, e.g. "veth"); "" derives it from sysfs.
	Kind string
}

// PlanCPUs plans queue pinning for dev in the caller's namespace.
func PlanCPUs(dev string, queues int, override map[int]int) ([]Assignment, error) {
	return host.PlanCPUs(dev, queues, override)
}

// PlanCPUs plans queue pinning for dev in k's namespace. The interface must
// exist there; its link type names it in fallback reasons.
func (k *Kernel) PlanCPUs(dev string, queues int, override map[int]int) ([]Assignment, error) {
	if err := checkIfName(dev); err != nil {
		return nil, fmt.Errorf("plan cpus: %w", err)
	}
	link, err := k.h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("plan cpus for %s: %w", dev, err)
	}
	p := Planner{Proc: k.proc, Sys: k.sys, Kind: link.Type()}
	if !k.local {
		// Host sysfs would describe a same-named device of another namespace.
		return p.plan(dev, queues, override, false)
	}
	return p.Plan(dev, queues, override)
}

// Plan assigns a CPU to each of dev's first queues RX queues. Rules, in
// order: a config override (queue -> CPU); the first allowed CPU of the
// queue IRQ's smp_affinity_list; round-robin over the allowed CPUs.
func (p Planner) Plan(dev string, queues int, override map[int]int) ([]Assignment, error) {
	return p.plan(dev, queues, override, true)
}

func (p Planner) plan(dev string, queues int, override map[int]int, useSys bool) ([]Assignment, error) {
	if err := checkIfName(dev); err != nil {
		return nil, fmt.Errorf("plan cpus: %w", err)
	}
	if queues < 1 {
		return nil, fmt.Errorf("plan cpus for %s: queue count %d must be at least 1", dev, queues)
	}
	allowed := p.Allowed
	if allowed == nil {
		var err error
		if allowed, err = allowedCPUs(); err != nil {
			return nil, fmt.Errorf("plan cpus for %s: %w", dev, err)
		}
	}
	if len(allowed) == 0 {
		return nil, fmt.Errorf("plan cpus for %s: allowed cpu set is empty", dev)
	}
	allowedStr := formatCPUList(allowed)
	for q, cpu := range override {
		if q < 0 || q >= queues {
			return nil, fmt.Errorf("plan cpus for %s: override for queue %d: queue must be in 0-%d", dev, q, queues-1)
		}
		if !slices.Contains(allowed, cpu) {
			return nil, fmt.Errorf("plan cpus for %s: override queue %d -> cpu %d: cpu must be in the allowed set %s", dev, q, cpu, allowedStr)
		}
	}

	proc := p.Proc
	if proc == "" {
		proc = "/proc"
	}
	sys := p.Sys
	if sys == "" {
		sys = "/sys"
	}
	var driver, bus string
	if useSys {
		driver, bus = deviceNames(sys, dev)
	}
	kind := p.Kind
	if kind == "" {
		kind = driver
	}
	if kind == "" {
		kind = "no bus device"
	}

	// A missing /proc/interrupts (some containers) only costs the IRQ rule.
	var irqs interrupts
	if f, err := os.Open(filepath.Join(proc, "interrupts")); err == nil {
		irqs, err = parseInterrupts(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("plan cpus for %s: %w", dev, err)
		}
	}

	out := make([]Assignment, queues)
	spread := 0
	for q := range out {
		out[q].Queue = q
		if cpu, ok := override[q]; ok {
			out[q].CPU, out[q].Reason = cpu, "config override"
			continue
		}
		irq, name, found := findQueueIRQ(irqs, dev, driver, bus, q)
		var why string
		if found {
			cpu, reason, ok := irqCPU(proc, irq, allowed)
			if ok {
				out[q].CPU, out[q].Reason = cpu, reason
				continue
			}
			why = fmt.Sprintf("irq %d (%s): %s", irq, name, reason)
		} else {
			why = fmt.Sprintf("no per-queue irq (%s)", kind)
		}
		// Spreading counts only the queues that fall through to it, so that
		// two unmatched queues never land on the same CPU while another sits
		// idle.
		out[q].CPU = allowed[spread%len(allowed)]
		out[q].Reason = why + ": spread over allowed cpus " + allowedStr
		spread++
	}
	return out, nil
}

// deviceNames returns the driver and bus-device basenames of dev, both empty
// for virtual devices, which have no /sys/class/net/DEV/device.
func deviceNames(sys, dev string) (driver, bus string) {
	devdir := filepath.Join(sys, "class/net", dev, "device")
	if target, err := os.Readlink(devdir); err == nil {
		bus = filepath.Base(target)
	}
	if target, err := os.Readlink(filepath.Join(devdir, "driver")); err == nil {
		driver = filepath.Base(target)
	}
	return driver, bus
}

func findQueueIRQ(irqs interrupts, dev, driver, bus string, q int) (irq int, name string, ok bool) {
	if len(irqs) == 0 {
		return 0, "", false
	}
	for _, n := range queueIRQNames(dev, driver, bus, q) {
		if irq, ok := irqs[n]; ok {
			return irq, n, true
		}
	}
	return 0, "", false
}

// irqCPU picks the first CPU of the IRQ's affinity that the process may use.
// When it cannot, reason explains why for the fallback's Reason.
func irqCPU(proc string, irq int, allowed []int) (cpu int, reason string, ok bool) {
	path := filepath.Join(proc, "irq", fmt.Sprint(irq), "smp_affinity_list")
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, "cannot read smp_affinity_list", false
	}
	list := strings.TrimSpace(string(raw))
	cpus, err := parseCPUList(list)
	if err != nil {
		return 0, fmt.Sprintf("bad smp_affinity_list %q", list), false
	}
	for _, c := range cpus {
		if slices.Contains(allowed, c) {
			return c, fmt.Sprintf("irq %d smp_affinity_list %s", irq, list), true
		}
	}
	return 0, fmt.Sprintf("smp_affinity_list %s has no allowed cpu", list), false
}

// allowedCPUs is the process's CPU affinity, which cgroups and taskset may
// have narrowed below the online CPUs.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for c := range maxCPU {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
