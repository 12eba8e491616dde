package main

import (
	"strings"
	"testing"
)

// TestIPVSSvcPersistentTimeout: a bare -p takes libipvs's
// IPVS_SVC_PERSISTENT_TIMEOUT, 6*60 (parse_timeout in ipvsadm.c), so
// ipvsadm 1.31 sends, lists and saves 360, whatever its man page says.
func TestIPVSSvcPersistentTimeout(t *testing.T) {
	serve(t)
	mustAdm(t, sh("-A -t 198.19.0.1:80 -s rr -p")...)
	mustAdm(t, sh("-A -t 198.19.0.2:0 -p -M 255.255.255.0")...)
	if got, want := mustAdm(t, "-L", "-n"), header+
		"TCP  198.19.0.1:80 rr persistent 360\n"+
		"TCP  198.19.0.2:0 wlc persistent 360 mask 255.255.255.0\n"; got != want {
		t.Fatalf("-L -n printed\n%s\nwant\n%s", got, want)
	}
	if got, want := mustAdm(t, "-S", "-n"), "-A -t 198.19.0.1:80 -s rr -p 360\n-A -t 198.19.0.2:0 -s wlc -p 360 -M 255.255.255.0\n"; got != want {
		t.Fatalf("-S -n printed\n%s\nwant\n%s", got, want)
	}
	if out, _, _ := adm(t, "", "-h"); !strings.Contains(out, "(360 if not given)") {
		t.Errorf("usage does not give the bare -p timeout as 360:\n%s", out)
	}
}
