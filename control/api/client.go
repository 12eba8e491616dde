package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// DefaultSocket is where afvs listens unless configured otherwise.
const DefaultSocket = "/run/afvs/afvs.sock"

// Client talks to the control API over its unix socket.
//
// It speaks HTTP/1.0 itself, one request per connection with the reply
// read to its end, rather than through net/http: that package's client
// would link TLS, certificate and HTTP/2 code that a client of a local
// socket never runs, and afvsadm links this package. An HTTP/1.0 request
// makes the daemon's net/http server frame its reply by Content-Length or
// by closing the connection, never by chunks.
type Client struct {
	Socket string
	// Timeout bounds one whole request: connect, send and read the reply.
	Timeout time.Duration
}

// NewClient returns a client for the socket at path, with a 10 s timeout.
func NewClient(path string) *Client {
	return &Client{Socket: path, Timeout: 10 * time.Second}
}

// APIError is an error the server reported.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Do sends a request with an optional JSON body and decodes the reply into
// out (if non-nil).
func (c *Client) Do(method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = b
	}
	if !validToken(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n") {
		return fmt.Errorf("bad request %q %q", method, path)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	conn, err := net.DialTimeout("unix", c.Socket, timeout)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("cannot reach afvs at %s: %v", c.Socket, op.Err)
		}
		return fmt.Errorf("cannot reach afvs at %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("cannot reach afvs at %s: %w", c.Socket, err)
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: afvs\r\nUser-Agent: afvs-client\r\n", method, path)
	if payload != nil {
		req.WriteString("Content-Type: application/json\r\n")
	}
	fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(payload))
	req.Write(payload)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return fmt.Errorf("send to afvs at %s: %w", c.Socket, err)
	}
	code, status, data, err := readReply(bufio.NewReader(conn))
	if err != nil {
		return fmt.Errorf("reply from afvs at %s: %w", c.Socket, err)
	}
	if code >= 300 {
		var e ErrorBody
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &APIError{code, e.Error}
		}
		return &APIError{code, fmt.Sprintf("afvs answered %s", status)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply from afvs: %w", err)
		}
	}
	return nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// maxHeader bounds the status line and headers of a reply.
const maxHeader = 64 << 10

// readReply reads an HTTP/1.x response: its status code, its status
// ("409 Conflict") and its body, delimited by Content-Length or, without
// one, by the end of the connection. A chunked body is an error: the
// request was HTTP/1.0, which has no chunks.
func readReply(r *bufio.Reader) (code int, status string, body []byte, err error) {
	read := 0
	line := func() (string, error) {
		l, err := r.ReadString('\n')
		read += len(l)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("header: %w", err)
		}
		if read > maxHeader {
			return "", fmt.Errorf("header longer than %d bytes", maxHeader)
		}
		return strings.TrimRight(l, "\r\n"), nil
	}
	first, err := line()
	if err != nil {
		return 0, "", nil, err
	}
	proto, status, _ := strings.Cut(first, " ")
	codeText, _, _ := strings.Cut(status, " ")
	code, cerr := strconv.Atoi(codeText)
	if !strings.HasPrefix(proto, "HTTP/1.") || cerr != nil || len(codeText) != 3 || code < 100 {
		return 0, "", nil, fmt.Errorf("not an HTTP/1 status line: %q", first)
	}
	length := -1
	for {
		h, err := line()
		if err != nil {
			return 0, "", nil, err
		}
		if h == "" {
			break
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return 0, "", nil, fmt.Errorf("malformed header line %q", h)
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "content-length":
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || n < 0 || n > 1<<40 {
				return 0, "", nil, fmt.Errorf("bad Content-Length %q", value)
			}
			length = int(n)
		case "transfer-encoding":
			if !strings.EqualFold(value, "identity") {
				return 0, "", nil, fmt.Errorf("transfer encoding %q in reply to an HTTP/1.0 request", value)
			}
		}
	}
	if length < 0 {
		body, err = io.ReadAll(r)
		return code, status, body, err
	}
	var buf bytes.Buffer
	buf.Grow(min(length, 1<<20))
	n, err := io.Copy(&buf, io.LimitReader(r, int64(length)))
	if err == nil && n < int64(length) {
		err = fmt.Errorf("body: %d of %d bytes: %w", n, length, io.ErrUnexpectedEOF)
	}
	return code, status, buf.Bytes(), err
}

// Status returns GET /v1/status.
func (c *Client) Status() (Status, error) {
	var s Status
	err := c.Do("GET", "/v1/status", nil, &s)
	return s, err
}

// Services returns GET /v1/services.
func (c *Client) Services() ([]Service, error) {
	var s []Service
	err := c.Do("GET", "/v1/services", nil, &s)
	return s, err
}

// Conns returns GET /v1/conns.
func (c *Client) Conns() ([]Conn, error) {
	var s []Conn
	err := c.Do("GET", "/v1/conns", nil, &s)
	return s, err
}

// Timeouts returns GET /v1/timeouts.
func (c *Client) Timeouts() (Timeouts, error) {
	var t Timeouts
	err := c.Do("GET", "/v1/timeouts", nil, &t)
	return t, err
}

// Commands applies ipvsadm command lines atomically.
func (c *Client) Commands(lines [][]string) error {
	return c.Do("POST", "/v1/commands", CommandsRequest{Commands: lines}, nil)
}

// Reload asks the daemon to re-read its configuration.
func (c *Client) Reload() error {
	return c.Do("POST", "/v1/reload", nil, nil)
}
