package apply

import (
	"slices"
	"testing"

	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// TestSchedNamesAgree checks that the names vs accepts are exactly the
// schedulers the sched package builds: vs holds the list for every
// validation, sched the builders, and neither imports the other.
func TestSchedNamesAgree(t *testing.T) {
	if got, want := vs.SchedNames(), sched.Names(); !slices.Equal(got, want) {
		t.Errorf("vs.SchedNames() = %v, sched.Names() = %v: add the scheduler to vs's list", got, want)
	}
}
