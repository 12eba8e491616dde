package layout

import (
	"strings"
	"testing"
)

const testsupport = mod + "/internal/testsupport"

// TestTestSupportOnlyInTests: internal/testsupport and its checker link
// the testing package and gopacket; only tests may import them.
func TestTestSupportOnlyInTests(t *testing.T) {
	found := false
	for _, p := range packages(t) {
		found = found || p.ImportPath == testsupport
		for _, imp := range p.Imports {
			if (imp == testsupport || strings.HasPrefix(imp, testsupport+"/")) && !strings.HasPrefix(p.ImportPath, testsupport) {
				t.Errorf("%s imports %s; only tests may", p.ImportPath, testsupport)
			}
		}
	}
	if !found {
		t.Errorf("go list does not list %s", testsupport)
	}
}
