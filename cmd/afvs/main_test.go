package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLabCommandsPointAtAfvsLab: the lab tools left the daemon's binary;
// asking afvs for one names the afvs-lab command instead of only saying
// "unknown command".
func TestLabCommandsPointAtAfvsLab(t *testing.T) {
	for _, c := range []string{"demo", "bench", "sim", "replay"} {
		var out bytes.Buffer
		code := dispatch([]string{c, "--help"}, &out)
		if code != 2 || !strings.Contains(out.String(), `run "afvs-lab `+c+`"`) || strings.Contains(out.String(), "unknown command") {
			t.Errorf("afvs %s: exit %d, %q; want 2 and a pointer to afvs-lab %s", c, code, out.String(), c)
		}
	}
	var out bytes.Buffer
	if code := dispatch([]string{"frobnicate"}, &out); code != 2 || !strings.Contains(out.String(), `unknown command "frobnicate"`) ||
		!strings.Contains(out.String(), "afvs-lab") {
		t.Errorf("afvs frobnicate: exit %d, %q; want the usage, which names afvs-lab", code, out.String())
	}
}
