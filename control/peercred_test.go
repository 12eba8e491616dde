package control

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/afvs/afvs/control/api"
)

func serveMux(t *testing.T, l net.Listener) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, api.Status{Version: api.Version}) })
	hs := &http.Server{Handler: mux}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
}

// The peer check runs for any uid: a listener that allows nobody must
// refuse this test's own connections with 403, one that allows this
// process's uid must serve them.
func TestRootOnlyRefusesOtherUIDs(t *testing.T) {
	me := uint32(os.Getuid())
	for _, tc := range []struct {
		name    string
		allowed func(uint32) bool
		refused bool
	}{
		{"other uid", func(uid uint32) bool { return uid != me }, true},
		{"own uid", func(uid uint32) bool { return uid == me }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s.sock")
			l, err := Listen(sock)
			if err != nil {
				t.Fatal(err)
			}
			serveMux(t, rootOnly{l, tc.allowed})
			_, err = api.NewClient(sock).Status()
			if !tc.refused {
				if err != nil {
					t.Fatalf("allowed peer refused: %v", err)
				}
				return
			}
			ae, ok := err.(*api.APIError)
			if !ok || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, "Permission denied") {
				t.Fatalf("refused peer got %v (%T), want 403 Permission denied", err, err)
			}
		})
	}
}

func TestRootOnlyIsUIDZero(t *testing.T) {
	l := RootOnly(nil).(rootOnly)
	if !l.allowed(0) || l.allowed(65534) || l.allowed(1000) {
		t.Fatal("RootOnly must allow uid 0 and nobody else")
	}
}

func TestListenSocketMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "afvs")
	sock := filepath.Join(dir, "afvs.sock")
	old := syscall.Umask(0) // the most permissive umask must not leak into the socket
	defer syscall.Umask(old)
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uint32(os.Getuid()) {
		t.Errorf("socket owned by uid %d, want %d", st.Uid, os.Getuid())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory: %v, %v; want mode 0700", di.Mode(), err)
	}
	if got := syscall.Umask(0); got != 0 {
		t.Errorf("Listen left the umask at %o", got)
	}
	// A second daemon must not steal a live socket.
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another afvs") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	l.Close()
	// net.UnixListener.Close unlinks the socket; recreate a stale one, as
	// a SIGKILLed daemon leaves, and check Listen replaces it.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
	file := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
}
