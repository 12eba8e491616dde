package vs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// schedNames is every scheduler afvs builds, sorted: IPVS's rr, wrr, lc,
// wlc, sed, nq, lblc, lblcr, dh, sh, mh, fo and ovf, and afvs's twos. The
// sched package builds them; vs cannot import it (vs is a leaf), so
// ipvsadm/apply's tests check that sched.Names gives this same list.
var schedNames = []string{"dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "twos", "wlc", "wrr"}

// ErrSchedNotFound is ipvsadm 1.31's wording for an unknown scheduler
// (ipvs_strerror's ENOENT for adding or editing a service).
var ErrSchedNotFound = errors.New("Scheduler or persistence engine not found")

// SchedNames lists the known schedulers, sorted.
func SchedNames() []string { return slices.Clone(schedNames) }

// CheckSched is the one check of a scheduler's name, for every layer that
// takes one (the config, ipvsadm's commands). It returns an error wrapping
// ErrSchedNotFound that names the scheduler and the known ones.
func CheckSched(name string) error {
	if _, ok := slices.BinarySearch(schedNames, name); ok {
		return nil
	}
	return fmt.Errorf("%w: %q (afvs knows %s)", ErrSchedNotFound, name, strings.Join(schedNames, ", "))
}
