package director

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lockThread keeps a worker on one OS thread so its CPU affinity sticks.
// The thread is never unlocked: it dies with the goroutine, which keeps a
// pinned thread from being handed back to the scheduler.
func lockThread() { runtime.LockOSThread() }

// WorkerThreadName is the name (comm, in /proc/PID/task/TID/comm) of every
// worker's OS thread, so tools can find the workers' CPU time.
const WorkerThreadName = "afvs-worker"

// nameThread names the calling OS thread (PR_SET_NAME; best effort) and
// returns its id.
func nameThread(name string) int {
	b := append([]byte(name), 0)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	return unix.Gettid()
}

// ThreadCPU is the CPU time (user and system) the thread tid of process
// pid has used. It reads the scheduler's own count of the thread's run time
// in nanoseconds (the first field of /proc/PID/task/TID/schedstat), and
// falls back to utime and stime of /proc/PID/task/TID/stat, in clock ticks
// of 10 ms, on kernels without schedstat. The ticks are sampled: a thread
// that wakes briefly but often, as an idle worker does, may be charged a
// whole tick for a few microseconds, so over a short window they can show
// an idle thread as busy.
func ThreadCPU(pid, tid int) (time.Duration, error) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid)); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, err := strconv.ParseUint(f[0], 10, 63)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/task/%d/schedstat: run time %q: %w", pid, tid, f[0], err)
			}
			return time.Duration(ns), nil
		}
	}
	return threadTicks(pid, tid)
}

// threadTicks is ThreadCPU from /proc/PID/task/TID/stat's clock ticks.
func threadTicks(pid, tid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted from after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/task/%d/stat: no command name", pid, tid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3 of stat(5), utime 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/task/%d/stat: %d fields after the name, want at least 13", pid, tid, len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%d/stat: cpu time %q: %w", pid, tid, s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

const userHZ = 100

// WorkerThreads lists the threads of process pid named WorkerThreadName.
func WorkerThreads(pid int) ([]int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(dir + "/" + e.Name() + "/comm")
		if err != nil {
			continue // the thread has exited
		}
		if strings.TrimSpace(string(comm)) == WorkerThreadName {
			out = append(out, tid)
		}
	}
	return out, nil
}
