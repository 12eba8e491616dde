package director

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// onThread runs f on a goroutine locked to its own OS thread and hands f
// the thread's id.
func onThread(f func(tid int)) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		f(unix.Gettid())
		close(done)
	}()
	<-done
}

// TestThreadCPUCountsSpin checks ThreadCPU against the scheduler's count
// for the calling thread while it spins.
func TestThreadCPUCountsSpin(t *testing.T) {
	onThread(func(tid int) {
		c0, err := ThreadCPU(os.Getpid(), tid)
		if err != nil {
			t.Error(err)
			return
		}
		own0 := threadCPU()
		for threadCPU()-own0 < 50*time.Millisecond {
		}
		own := threadCPU() - own0
		c1, err := ThreadCPU(os.Getpid(), tid)
		if err != nil {
			t.Error(err)
			return
		}
		// schedstat is updated at the reader's request for a running
		// thread only up to its last accounting: allow a tick of 10 ms.
		if d := c1 - c0; d < own-10*time.Millisecond || d > own+10*time.Millisecond {
			t.Errorf("ThreadCPU moved %v while the thread spun for %v", d, own)
		}
	})
}

// TestThreadCPUBriefWakeups checks that a thread that wakes every
// millisecond for a few microseconds, as an idle worker wakes from its
// bounded waits, is charged what it ran, not the ticks that happened to
// land on it.
func TestThreadCPUBriefWakeups(t *testing.T) {
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skip("no schedstat on this kernel: ThreadCPU counts ticks")
	}
	onThread(func(tid int) {
		c0, err := ThreadCPU(os.Getpid(), tid)
		if err != nil {
			t.Error(err)
			return
		}
		own0, t0 := threadCPU(), time.Now()
		for time.Since(t0) < 300*time.Millisecond {
			_ = unix.Nanosleep(&unix.Timespec{Nsec: int64(time.Millisecond)}, nil)
		}
		own, wall := threadCPU()-own0, time.Since(t0)
		c1, err := ThreadCPU(os.Getpid(), tid)
		if err != nil {
			t.Error(err)
			return
		}
		d := c1 - c0
		t.Logf("%v of CPU by ThreadCPU, %v by the thread's clock, in %v", d, own, wall)
		// Ticks would charge such a thread whole ticks or none; the
		// thread's own clock, which a loaded machine may make larger than
		// a few percent of the wall time, is the measure.
		if d > own+2*time.Millisecond || d < own-2*time.Millisecond {
			t.Errorf("ThreadCPU charged %v in %v to a thread that ran %v", d, wall, own)
		}
	})
}
