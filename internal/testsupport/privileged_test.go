package testsupport

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
	if len(args) > 0 {
		r.skipped = args[len(args)-1].(error).Error()
	}
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	if len(args) > 0 {
		r.failed = args[len(args)-1].(error).Error()
	}
}

var absent = Feature{"the flux capacitor", func() error { return errors.New("not fitted") }}

// TestRequirePrivilegedSkipsOutsideCI: a missing feature (or root) skips
// the test when CI is not set, and names what is missing.
func TestRequirePrivilegedSkipsOutsideCI(t *testing.T) {
	t.Setenv(ciEnv, "")
	var r recorder
	RequirePrivileged(&r, absent)
	if r.failed != "" || r.skipped == "" {
		t.Fatalf("skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}
	want := "flux capacitor"
	if os.Geteuid() != 0 {
		want = "root"
	}
	if !strings.Contains(r.skipped, want) {
		t.Errorf("skip reason %q does not name %q", r.skipped, want)
	}
}

// TestRequirePrivilegedFailsInCI: the same missing feature fails the test
// when CI is set.
func TestRequirePrivilegedFailsInCI(t *testing.T) {
	t.Setenv(ciEnv, "true")
	var r recorder
	RequirePrivileged(&r, absent)
	if r.skipped != "" || r.failed == "" {
		t.Fatalf("skipped %q, failed %q; want a failure", r.skipped, r.failed)
	}
}

// TestRequirePrivilegedPasses: as root with the features present, the
// test neither skips nor fails, in CI or not.
func TestRequirePrivilegedPasses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root has the privileges this checks for")
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv(ciEnv, ci)
		var r recorder
		RequirePrivileged(&r, IPRoute, NetNS)
		if r.skipped != "" || r.failed != "" {
			t.Errorf("CI=%q: skipped %q, failed %q", ci, r.skipped, r.failed)
		}
	}
}

func TestMissingNamesEveryFeature(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("without root only root is reported")
	}
	other := Feature{"a second thing", func() error { return errors.New("gone") }}
	err := Missing(absent, IPRoute, other)
	if err == nil {
		t.Fatal("two features are missing, Missing says none")
	}
	for _, s := range []string{"flux capacitor", "not fitted", "a second thing", "gone"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%v does not mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "iproute2") {
		t.Errorf("%v names a feature that is present", err)
	}
}
