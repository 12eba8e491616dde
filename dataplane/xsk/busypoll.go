package xsk

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// BusyPoll is what the kernel accepted of the socket busy-poll options
// (SO_PREFER_BUSY_POLL, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET). A zero field
// is an option not in force: not asked for, or refused by the kernel.
type BusyPoll struct {
	// Prefer is SO_PREFER_BUSY_POLL: the device's NAPI context is left to
	// the application's system calls while it busy-polls, where the
	// device defers its interrupts (napi_defer_hard_irqs).
	Prefer bool
	// Usecs is SO_BUSY_POLL: how long a recvfrom or sendto on the socket
	// runs the device's NAPI poll before it returns.
	Usecs int
	// Budget is SO_BUSY_POLL_BUDGET: frames per NAPI poll of a busy poll.
	Budget int
}

// On reports whether a system call on the socket busy-polls the device.
func (b BusyPoll) On() bool { return b.Prefer || b.Usecs > 0 }

func (b BusyPoll) String() string {
	var parts []string
	if b.Prefer {
		parts = append(parts, "prefer")
	}
	if b.Usecs > 0 {
		parts = append(parts, fmt.Sprintf("usecs=%d", b.Usecs))
	}
	if b.Budget > 0 {
		parts = append(parts, fmt.Sprintf("budget=%d", b.Budget))
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ",")
}

// SetBusyPoll turns the socket's busy-poll options on (with usecs and
// budget) or off, and returns what the kernel accepted. Each option is
// set on its own: a kernel that lacks one (SO_PREFER_BUSY_POLL and
// SO_BUSY_POLL_BUDGET came in 5.11) or refuses it leaves that field zero
// and the others in force, and a socket with none works as before. While
// busy polling is on, Receive makes a non-blocking recvfrom whenever the
// RX ring is empty, so the kernel runs the device's NAPI poll in the
// caller's context instead of waiting for a softirq. Call it from the
// owner goroutine.
func (s *Socket) SetBusyPoll(on bool, usecs, budget int) BusyPoll {
	var b BusyPoll
	if !on {
		usecs, budget = 0, 0
	}
	set := func(opt, v int) bool {
		return unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, opt, v) == nil
	}
	prefer := 0
	if on {
		prefer = 1
	}
	if set(unix.SO_PREFER_BUSY_POLL, prefer) && on {
		b.Prefer = true
	}
	if set(unix.SO_BUSY_POLL, usecs) && on {
		b.Usecs = usecs
	}
	if on && budget > 0 && set(unix.SO_BUSY_POLL_BUDGET, budget) {
		b.Budget = budget
	}
	s.busyPoll = b
	return b
}

// BusyPoll reports the busy-poll options in force. Call it from the owner
// goroutine.
func (s *Socket) BusyPoll() BusyPoll { return s.busyPoll }
