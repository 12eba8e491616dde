package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonBinary: the lab tools find the daemon next to themselves
// first, then on $PATH, and an explicit path must be an executable file.
func TestDaemonBinary(t *testing.T) {
	dir, other, empty := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	self := write(filepath.Join(dir, "afvs-lab"), 0o755)
	sibling := write(filepath.Join(dir, "afvs"), 0o755)
	onPath := write(filepath.Join(other, "afvs"), 0o755)
	plain := write(filepath.Join(other, "afvs.txt"), 0o644)

	t.Setenv("PATH", other)
	if got, err := daemonBinary("", self); err != nil || got != sibling {
		t.Errorf("next to %s: got %q, %v; want %s", self, got, err, sibling)
	}
	// Without a sibling, $PATH.
	if got, err := daemonBinary("", filepath.Join(empty, "afvs-lab")); err != nil || got != onPath {
		t.Errorf("on $PATH: got %q, %v; want %s", got, err, onPath)
	}
	// An explicit path wins over both.
	if got, err := daemonBinary(onPath, self); err != nil || got != onPath {
		t.Errorf("explicit: got %q, %v; want %s", got, err, onPath)
	}
	for _, bad := range []struct{ path, want string }{
		{filepath.Join(empty, "nope"), "no such file"},
		{plain, "not executable"},
		{other, "not a regular file"},
	} {
		_, err := daemonBinary(bad.path, self)
		if err == nil || !strings.Contains(err.Error(), bad.path) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("daemonBinary(%q): %v; want an error naming it and %q", bad.path, err, bad.want)
		}
	}
	// Nowhere: the error says where it looked and how to fix it.
	t.Setenv("PATH", empty)
	_, err := daemonBinary("", filepath.Join(empty, "afvs-lab"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(empty, "afvs")) || !strings.Contains(err.Error(), "--afvs") {
		t.Errorf("no daemon anywhere: %v", err)
	}
}
