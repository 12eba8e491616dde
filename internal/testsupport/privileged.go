// Package testsupport is the one test-support layer of AFVS: the gate for
// privileged tests, a packet builder and a checker in the manner of
// gVisor's checker package. Only tests import it; internal/layout's test
// makes sure production code never does.
package testsupport

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Feature is something of the kernel or the machine a privileged test
// needs beyond root. Its check returns nil when the feature is there.
type Feature struct {
	Name  string
	check func() error
}

var (
	// IPRoute is iproute2's ip command, which the namespace and veth
	// helpers run.
	IPRoute = Feature{"iproute2's ip command", func() error {
		_, err := exec.LookPath("ip")
		return err
	}}
	// Keepalived is Debian's keepalived, which the HA tests run for VRRP
	// (`make deps` installs it).
	Keepalived = Feature{"keepalived (apt-get install keepalived)", func() error {
		_, err := exec.LookPath("keepalived")
		return err
	}}
	// NetNS is support for network namespaces (CONFIG_NET_NS).
	NetNS = Feature{"network namespaces", func() error {
		_, err := os.Stat("/proc/self/ns/net")
		return err
	}}
	// AFXDP is the AF_XDP socket family (CONFIG_XDP_SOCKETS), tried by
	// opening and closing one socket.
	AFXDP = Feature{"AF_XDP sockets", func() error {
		fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	}}
)

// ciEnv is the variable CI sets; where it is set, a missing privilege is a
// failure, not a skip, since a test that silently skipped in CI proves
// nothing.
const ciEnv = "CI"

// Missing returns why the privileges and features are not all there, or
// nil. Root comes first: without it the features cannot be tried.
func Missing(what ...Feature) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF)")
	}
	var missing []string
	for _, f := range what {
		if err := f.check(); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", f.Name, err))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// RequirePrivileged skips t when the process is not root or a named
// feature is missing, and fails it instead when the CI variable is set:
// CI runs as root and must run every privileged test.
func RequirePrivileged(t testing.TB, what ...Feature) {
	t.Helper()
	err := Missing(what...)
	if err == nil {
		return
	}
	if os.Getenv(ciEnv) != "" {
		t.Fatalf("privileged test, and %s is set so it must run: %v", ciEnv, err)
		return
	}
	t.Skipf("privileged test: %v", err)
}
