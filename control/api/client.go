package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultSocket is where afvs listens unless configured otherwise.
const DefaultSocket = "/run/afvs/afvs.sock"

// Client talks to the control API over its unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
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
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://afvs"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("cannot reach afvs at %s: %v", c.Socket, op.Err)
		}
		return fmt.Errorf("cannot reach afvs at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &APIError{resp.StatusCode, e.Error}
		}
		return &APIError{resp.StatusCode, fmt.Sprintf("afvs answered %s", resp.Status)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode reply from afvs: %w", err)
		}
	}
	return nil
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
