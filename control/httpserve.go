package control

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPLimits bound what one client can hold of an HTTP server: how long
// it may take to send a request's headers (ReadHeader) and the whole
// request (Read), how long the server keeps trying to write a response
// (Write, counted from the end of the request's headers, so it covers the
// handler), how long an idle keep-alive connection stays open (Idle), and
// how many connections may be open at once (MaxConns, see LimitConns).
type HTTPLimits struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxConns                      int
}

// DefaultHTTPLimits are the control API's and the metrics endpoint's.
// Write is longer than the afvsadm client's own 10 s timeout, so a slow
// command is cut off by the client, which says so, not by the server.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeader: 5 * time.Second,
	Read:       10 * time.Second,
	Write:      30 * time.Second,
	Idle:       10 * time.Second,
	MaxConns:   64,
}

// NewHTTPServer returns a server for h with lim's timeouts. Serve it on a
// listener wrapped in LimitConns(l, lim.MaxConns) for the connection cap.
func NewHTTPServer(h http.Handler, lim HTTPLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    64 << 10,
	}
}

// LimitConns returns a listener that has at most n of l's connections
// open at once: Accept waits until one of them is closed, and further
// clients wait in the kernel's backlog meanwhile. The timeouts of
// NewHTTPServer make sure each connection is closed in bounded time, so
// no client can hold the slots forever.
func LimitConns(l net.Listener, n int) net.Listener {
	return &limitListener{Listener: l, slots: make(chan struct{}, max(n, 1)), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close: a waiting Accept gives up
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when it is first closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// unwrap returns the connection LimitConns accepted, for RootOnly's
// peer-credential check.
func (c *limitedConn) unwrap() net.Conn { return c.Conn }
