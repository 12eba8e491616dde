package xdpprog

import (
	"errors"

	"github.com/cilium/ebpf"
)

// loaded is what every program of this package holds: the program and
// its per-CPU counters. Each program type embeds it for Attach, program
// and the closing of these two; maps of its own it passes to close.
type loaded struct {
	prog  *ebpf.Program
	stats *counters
}

// Attach links the program to ifindex; see Attachment for its lifetime.
func (l *loaded) Attach(ifindex int, mode Mode) (Attachment, error) {
	return attach(l.prog, ifindex, mode)
}

// program is the loaded program, for BPF_PROG_TEST_RUN in tests; it stays
// unexported so that no other package needs to import cilium/ebpf.
func (l *loaded) program() *ebpf.Program { return l.prog }

// close unloads the program, then the given maps, then the counters,
// skipping whatever a failed load never created. Attachments hold their
// own reference to the program and stay in effect until closed.
func (l *loaded) close(maps ...*ebpf.Map) error {
	var errs []error
	if l.prog != nil {
		errs = append(errs, l.prog.Close())
	}
	for _, m := range maps {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	if l.stats != nil {
		errs = append(errs, l.stats.m.Close())
	}
	return errors.Join(errs...)
}
