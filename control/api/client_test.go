package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// serve runs h on a unix socket in a temporary directory and returns its
// path.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "afvs.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// TestClientAgainstNetHTTP: the hand-written HTTP/1.0 client reads what
// the daemon's net/http server writes, small or large, flushed in pieces
// or not, and turns error replies into APIErrors.
func TestClientAgainstNetHTTP(t *testing.T) {
	big := Status{Version: "x", Drops: map[string]uint64{}}
	for i := range 50000 {
		big.Drops[fmt.Sprintf("reason-%06d", i)] = uint64(i)
	}
	var gotCommands CommandsRequest
	var gotType string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(big)
	})
	mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, r *http.Request) {
		// Written in flushed pieces: without an HTTP/1.0 request this
		// would be sent in chunks.
		b, _ := json.Marshal(Timeouts{TCP: 900, TCPFin: 120, UDP: 300})
		for _, c := range b {
			w.Write([]byte{c})
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("POST /v1/commands", func(w http.ResponseWriter, r *http.Request) {
		gotType = r.Header.Get("Content-Type")
		json.NewDecoder(r.Body).Decode(&gotCommands)
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(ErrorBody{Error: "command 2: Service not defined"})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not json", http.StatusInternalServerError)
	})
	c := NewClient(serve(t, mux))

	st, err := c.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, big) {
		t.Errorf("large status: %d drops back, want %d", len(st.Drops), len(big.Drops))
	}
	to, err := c.Timeouts()
	if err != nil || to != (Timeouts{900, 120, 300}) {
		t.Errorf("flushed timeouts: %+v, %v", to, err)
	}
	lines := [][]string{{"-A", "-t", "198.19.0.1:80"}, {"-a", "-t", "198.19.0.9:80", "-r", "198.18.0.11"}}
	err = c.Commands(lines)
	ae, ok := err.(*APIError)
	if !ok || ae.Status != 409 || ae.Message != "command 2: Service not defined" {
		t.Errorf("commands: %#v, want the server's 409 message", err)
	}
	if !reflect.DeepEqual(gotCommands.Commands, lines) || gotType != "application/json" {
		t.Errorf("server got %q as %q", gotCommands.Commands, gotType)
	}
	err = c.Reload()
	if ae, ok := err.(*APIError); !ok || ae.Status != 500 || ae.Message != "afvs answered 500 Internal Server Error" {
		t.Errorf("reload: %#v, want the status for a body that is not an error object", err)
	}
	if err := c.Do("GET", "/v1/nothing", nil, nil); err == nil || err.(*APIError).Status != 404 {
		t.Errorf("unknown path: %v", err)
	}
}

// TestClientBadReplies: a reply the client cannot frame is an error that
// says what was wrong, never a hang or a panic.
func TestClientBadReplies(t *testing.T) {
	for _, tc := range []struct{ name, reply, want string }{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", `transfer encoding "chunked"`},
		{"short body", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n{}", "body: 2 of 10 bytes"},
		{"bad length", "HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n{}", `bad Content-Length "-1"`},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1 status line"},
		{"bad header", "HTTP/1.0 200 OK\r\nno colon here\r\n\r\n{}", `malformed header line "no colon here"`},
		{"no header end", "HTTP/1.0 200 OK\r\nX: y\r\n", "header: unexpected EOF"},
		{"header too long", "HTTP/1.0 200 OK\r\nX: " + strings.Repeat("a", maxHeader) + "\r\n\r\n", "header longer than"},
		{"bad json", "HTTP/1.0 200 OK\r\n\r\n{\"version\":", "decode reply from afvs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				r := bufio.NewReader(conn)
				for { // the request's head
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(conn, tc.reply)
			}()
			c := NewClient(sock)
			c.Timeout = 5 * time.Second
			_, err = c.Status()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestClientUnreachable names the socket it could not reach.
func TestClientUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	_, err := NewClient(sock).Status()
	if err == nil || !strings.Contains(err.Error(), "cannot reach afvs at "+sock) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("got %v", err)
	}
	if err := NewClient(sock).Do("get", "/v1/status", nil, nil); err == nil || !strings.Contains(err.Error(), `bad request "get"`) {
		t.Errorf("lower-case method: %v", err)
	}
}
