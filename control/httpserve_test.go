package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/control/api"
)

// serveLimited serves h on a fresh unix socket with lim, the listener
// wrapped by wrap (LimitConns, maybe under rootOnly), and returns the
// socket's path.
func serveLimited(t *testing.T, h http.Handler, lim HTTPLimits, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(h, lim)
	done := make(chan struct{})
	go func() { defer close(done); hs.Serve(wrap(l)) }()
	t.Cleanup(func() { hs.Close(); <-done })
	return sock
}

func statusMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, api.Status{Version: api.Version}) })
	mux.HandleFunc("POST /v1/commands", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if err != nil {
			writeJSON(w, 400, api.ErrorBody{Error: err.Error()})
			return
		}
		writeJSON(w, 200, map[string]int{"applied": 0})
	})
	return mux
}

// statusWithin asks for /v1/status on a fresh connection and reports
// whether it was answered within d.
func statusWithin(sock string, d time.Duration) error {
	hc := &http.Client{Timeout: d, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", sock)
		}}}
	resp, err := hc.Get("http://afvs/v1/status")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return nil
}

// TestLimitConnsCapsOpenConnections: with the cap's connections open and
// silent, a further client waits; when one closes, it is served.
func TestLimitConnsCapsOpenConnections(t *testing.T) {
	lim := DefaultHTTPLimits
	lim.MaxConns = 3
	sock := serveLimited(t, statusMux(), lim, func(l net.Listener) net.Listener { return LimitConns(l, lim.MaxConns) })
	if err := statusWithin(sock, 2*time.Second); err != nil {
		t.Fatalf("an idle server: %v", err)
	}
	var held []net.Conn
	for range lim.MaxConns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		defer c.Close()
	}
	if err := statusWithin(sock, 500*time.Millisecond); err == nil {
		t.Fatalf("served a client beyond the cap of %d open connections", lim.MaxConns)
	}
	held[0].Close()
	if err := statusWithin(sock, 2*time.Second); err != nil {
		t.Fatalf("a slot was freed, but the next client was not served: %v", err)
	}
}

// closedWithin reports whether the server closes c (a read returns EOF or
// an error other than our own deadline) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHTTPServerTimeouts: a client that stalls in its request body, or
// keeps an idle connection, is disconnected; a response nobody reads is
// abandoned. Each also frees its LimitConns slot.
func TestHTTPServerTimeouts(t *testing.T) {
	lim := HTTPLimits{ReadHeader: 300 * time.Millisecond, Read: 400 * time.Millisecond, Write: 400 * time.Millisecond, Idle: 400 * time.Millisecond, MaxConns: 1}
	sock := serveLimited(t, statusMux(), lim, func(l net.Listener) net.Listener { return LimitConns(l, lim.MaxConns) })

	t.Run("stalled body", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /v1/commands HTTP/1.1\r\nHost: afvs\r\nContent-Length: 100\r\n\r\n{\"commands\":")
		if !closedWithin(c, 3*time.Second) {
			t.Error("a request body stalled for 3 s kept its connection")
		}
	})
	t.Run("stalled headers", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: af")
		if !closedWithin(c, 3*time.Second) {
			t.Error("request headers stalled for 3 s kept their connection")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: afvs\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.Close {
			t.Fatal("the server closed a keep-alive connection at once; nothing to test")
		}
		if !closedWithin(c, 3*time.Second) {
			t.Error("an idle keep-alive connection stayed open for 3 s")
		}
	})
	// With MaxConns 1, each connection above freed its slot when closed.
	if err := statusWithin(sock, 2*time.Second); err != nil {
		t.Errorf("after the timeouts: %v", err)
	}

	t.Run("unread response", func(t *testing.T) {
		wrote := make(chan error, 1)
		big := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 64<<10)
			for range 4096 { // 256 MiB: far more than socket buffers hold
				if _, err := w.Write(chunk); err != nil {
					wrote <- err
					return
				}
			}
			wrote <- nil
		})
		sock := serveLimited(t, big, lim, func(l net.Listener) net.Listener { return LimitConns(l, lim.MaxConns) })
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: afvs\r\n\r\n")
		select {
		case err := <-wrote:
			if err == nil {
				t.Error("the handler wrote 256 MiB to a client that reads nothing")
			}
		case <-time.After(5 * time.Second):
			t.Error("a response nobody reads still blocks its handler after 5 s")
		}
	})
}

// TestRootOnlyOverLimitConns: the peer check still sees the unix socket
// under LimitConns's wrapper (a wrapper it could not see through would
// let every peer in), and a refused peer gives its slot back.
func TestRootOnlyOverLimitConns(t *testing.T) {
	sock := serveLimited(t, statusMux(), DefaultHTTPLimits, func(l net.Listener) net.Listener {
		return rootOnly{LimitConns(l, 1), func(uint32) bool { return false }}
	})
	for i := range 3 {
		_, err := api.NewClient(sock).Status()
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, "Permission denied") {
			t.Fatalf("request %d from a refused peer: %v, want 403", i, err)
		}
	}
}
