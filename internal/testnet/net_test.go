package testnet

import (
	"os/exec"
	"testing"

	"github.com/afvs/afvs/internal/testsupport"
)

func TestReapStaleRemovesDeadOwnersOnly(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	// A process that has exited: its pid names a dead owner.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	stale := "afvs-" + itoa(dead) + "-1-stale"
	live := New() // our own pid: must survive
	if err := Run("ip", "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Run("ip", "netns", "delete", stale) })
	ns, err := live.NS("keep")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close() })
	// Other test binaries of the same run reap too (every lab does), so
	// the stale namespace may be gone before this call: what matters is
	// that it is gone after it, and the live one is not.
	got := ReapStale()
	if left := Leftovers(stale); len(left) != 0 {
		t.Fatalf("ReapStale removed %v and left %s, whose owner is dead", got, stale)
	}
	if len(Leftovers(ns.Name)) != 1 {
		t.Fatalf("ReapStale removed the live namespace %s", ns.Name)
	}
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
