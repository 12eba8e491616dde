package control

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// rootOnly closes connections from peers other than uid 0, checked with
// SO_PEERCRED: a second lock behind the socket's 0600 mode, so a socket
// whose mode was loosened by hand still refuses other users.
type rootOnly struct {
	net.Listener
	allowed func(uid uint32) bool
}

// RootOnly wraps a unix listener so only root's connections are served.
// The listener may be one LimitConns returned: the check sees the unix
// socket under its connections.
func RootOnly(l net.Listener) net.Listener {
	return rootOnly{l, func(uid uint32) bool { return uid == 0 }}
}

func (l rootOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if w, wrapped := c.(interface{ unwrap() net.Conn }); wrapped {
			uc, ok = w.unwrap().(*net.UnixConn)
		}
		if !ok {
			return c, nil
		}
		if uid, ok := peerUID(uc); ok && l.allowed(uid) {
			return c, nil
		}
		go refuse(c, uc)
	}
}

// refusal is the whole answer to a refused peer.
const refusal = "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 49\r\n\r\n" +
	`{"error":"Permission denied (you must be root)"}` + "\n"

// refuse answers a refused peer off the accept loop, so a slow one cannot
// hold up root's connections. It reads the request first: closing a
// socket with unread data makes the kernel reset it, and the client would
// see a broken pipe instead of the reason. c is the connection as
// accepted (it may hold a LimitConns slot until closed), uc the unix
// socket under it.
func refuse(c net.Conn, uc *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, 64<<10))); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 64<<10))
	}
	_, _ = c.Write([]byte(refusal))
	_ = uc.CloseWrite()
}

func peerUID(c *net.UnixConn) (uint32, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cerr != nil || cred == nil {
		return 0, false
	}
	return cred.Uid, true
}
