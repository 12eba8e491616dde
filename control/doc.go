// Package control is the daemon's control plane API: HTTP+JSON on a unix
// socket (default /run/afvs/afvs.sock, mode 0600), so `curl --unix-socket`
// works and afvsadm is a thin client.
//
// The server owns the current vs.Table. Every change (an ipvsadm command, a
// restore, a reload) is applied to a copy; the copy is validated and compiled
// by the dataplane, and only then becomes current. A request that would leave
// the table inconsistent is refused as a whole and changes nothing.
package control
