package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeConfigIsValid keeps the README's example configuration honest:
// it must pass the same checks as `afvs check`.
func TestReadmeConfigIsValid(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "```yaml\n")
	if i < 0 {
		t.Fatal("README has no yaml example")
	}
	s = s[i+len("```yaml\n"):]
	j := strings.Index(s, "```")
	if j < 0 {
		t.Fatal("README's yaml example is not closed")
	}
	path := filepath.Join(t.TempDir(), "readme.yaml")
	if err := os.WriteFile(path, []byte(s[:j]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runCheck([]string{"--config", path}); err != nil {
		t.Fatalf("the README's example config is rejected: %v", err)
	}
}
