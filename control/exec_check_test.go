package control_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/control"
)

func TestExecCheckExitStatus(t *testing.T) {
	addr := netip.MustParseAddrPort("198.18.0.11:80")
	// The script checks both ways of passing the server: arguments and
	// environment.
	script := `test "$1" = 198.18.0.11 && test "$2" = 80 && test "$AFVS_REAL_ADDR" = 198.18.0.11 && test "$AFVS_REAL_PORT" = 80`
	check := control.ExecCheck([]string{"/bin/sh", "-c", script, "sh", "{addr}", "{port}"})
	if err := check(context.Background(), addr); err != nil {
		t.Fatalf("passing script: %v", err)
	}
	if err := check(context.Background(), netip.MustParseAddrPort("198.18.0.12:80")); err == nil {
		t.Fatal("the script fails for another server, but the check passed")
	}
	fail := control.ExecCheck([]string{"/bin/sh", "-c", "echo backend says no >&2; exit 3"})
	err := fail(context.Background(), addr)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "backend says no") {
		t.Fatalf("failing script: error %v, want its status and output", err)
	}
	if err := control.ExecCheck([]string{"/nonexistent/check"})(context.Background(), addr); err == nil {
		t.Fatal("a missing program passed")
	}
}

// TestExecCheckTimeoutKillsGroup checks that a check running past its
// timeout fails at once and takes its children with it. The check's time
// runs out once the script has started its child (the pid file holds a
// pid): a deadline counted from the start could pass on a busy machine
// before the shell has run at all, and there would be no child to check.
func TestExecCheckTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	check := control.ExecCheck([]string{"/bin/sh", "-c", `sleep 30 & echo $! > "$0.tmp" && mv "$0.tmp" "$0"; wait`, pidFile})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	expired := make(chan time.Time, 1)
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
		}
		expired <- time.Now()
		cancel()
	}()
	err := check(ctx, netip.MustParseAddrPort("198.18.0.11:80"))
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v, want a timeout", err)
	}
	took := time.Since(<-expired)
	t.Logf("the check returned %v after its time ran out", took)
	if took > 5*time.Second {
		t.Fatalf("the check returned %v after its time ran out", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); running(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d outlived the check", pid)
		}
	}
}

// running reports whether pid is a live process: a zombie, killed and
// waiting for whoever inherited it to reap it, does not count.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
