package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime is the CPU time a set of threads used, split as the kernel
// accounts it: user is the thread's own code, system its system calls and
// the softirq work the kernel ran on its way out of them. On a veth the
// second includes the peer's receive processing (the sink's XDP program
// runs in the softirq the forwarder's transmit raised), so a forwarder's
// system time per frame is the kernel's price of its transmit path and
// its user time per frame the price of its own work.
//
// Waited is the time the threads were ready to run but waited for a CPU
// (the run delay of /proc/PID/task/TID/schedstat): on a shared machine,
// the part of a run the forwarder lost to other work.
//
// Run is the threads' run time as the scheduler counts it, in ns (the
// first field of schedstat): User and System come in 10 ms ticks, so a
// thread that ran a few milliseconds in a window (a short run on a busy
// machine) may show none of either, while Run shows what it ran.
type CPUTime struct {
	User, System, Waited, Run time.Duration
}

// Total is user plus system time.
func (c CPUTime) Total() time.Duration { return c.User + c.System }

// sub is c less an earlier reading b.
func (c CPUTime) sub(b CPUTime) CPUTime {
	return CPUTime{c.User - b.User, c.System - b.System, c.Waited - b.Waited, c.Run - b.Run}
}

// userHZ is the unit of the times in /proc/PID/task/TID/stat (USER_HZ,
// 100 on every architecture Go supports).
const userHZ = 100

// threadCPU reads the user and system time of thread tid of process pid
// from /proc/PID/task/TID/stat (fields 14 and 15 of proc(5), in USER_HZ
// ticks, which the kernel scales so that they add up to the thread's
// exact run time).
func threadCPU(pid, tid int) (CPUTime, error) {
	name := fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid)
	b, err := os.ReadFile(name)
	if err != nil {
		return CPUTime{}, err
	}
	c, err := parseStatCPU(name, b)
	if err != nil {
		return CPUTime{}, err
	}
	name = fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid)
	if b, err = os.ReadFile(name); err != nil {
		return CPUTime{}, err
	}
	c.Run, c.Waited, err = parseSchedstat(name, b)
	return c, err
}

// parseSchedstat reads the run time and the run delay, the first two of
// the three fields of a schedstat file (run time, run delay, time
// slices; in ns).
func parseSchedstat(name string, b []byte) (run, wait time.Duration, err error) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, 0, fmt.Errorf("%s: %q: want three fields", name, b)
	}
	var v [2]time.Duration
	for k, what := range []string{"run time", "run delay"} {
		n, err := strconv.ParseUint(f[k], 10, 63)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %s %q: %w", name, what, f[k], err)
		}
		v[k] = time.Duration(n)
	}
	return v[0], v[1], nil
}

// parseStatCPU reads utime and stime from the contents b of a stat file.
func parseStatCPU(name string, b []byte) (CPUTime, error) {
	// The command name, in parentheses, may hold spaces and parentheses:
	// fields are counted from after its last closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPUTime{}, fmt.Errorf("%s: no command name in %q", name, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name, field 3 of proc(5) (state) is f[0]: utime (14) is
	// f[11] and stime (15) f[12].
	if len(f) < 13 {
		return CPUTime{}, fmt.Errorf("%s: %d fields after the command name, want at least 13", name, len(f))
	}
	var t [2]time.Duration
	for k, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return CPUTime{}, fmt.Errorf("%s: cpu time field %d %q: %w", name, 14+k, s, err)
		}
		t[k] = time.Duration(n) * (time.Second / userHZ)
	}
	return CPUTime{User: t[0], System: t[1]}, nil
}

// threadsCPU sums threadCPU over tids.
func threadsCPU(pid int, tids []int) (CPUTime, error) {
	var sum CPUTime
	for _, tid := range tids {
		c, err := threadCPU(pid, tid)
		if err != nil {
			return CPUTime{}, err
		}
		sum.User += c.User
		sum.System += c.System
		sum.Waited += c.Waited
		sum.Run += c.Run
	}
	return sum, nil
}

// perFrame is d over frames in nanoseconds; 0 with no frames.
func perFrame(d time.Duration, frames uint64) float64 {
	if frames == 0 {
		return 0
	}
	return float64(d.Nanoseconds()) / float64(frames)
}
