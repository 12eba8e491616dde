package director

import (
	"sync"

	"golang.org/x/sys/unix"
)

// rawSender sends whole IPv4 packets through the director's network
// stack on a raw socket (IPPROTO_RAW: the header is the caller's), so the
// kernel's routing and neighbour tables carry them: the ICMP answers
// ip_vs_in_icmp sends with icmp_send for errors about the director's own
// IPIP packets (dataplane/icmptun.go). The socket never blocks; a packet
// the stack cannot take at once is refused.
type rawSender struct {
	fd int
	mu sync.Mutex
	sa unix.SockaddrInet4 // reused: Sendto takes its address, no allocation
}

func newRawSender() (*rawSender, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	return &rawSender{fd: fd}, nil
}

// SendIP sends pkt, an IPv4 packet, to its destination address.
func (r *rawSender) SendIP(pkt []byte) bool {
	if len(pkt) < 20 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	copy(r.sa.Addr[:], pkt[16:20])
	return unix.Sendto(r.fd, pkt, 0, &r.sa) == nil
}

func (r *rawSender) Close() error { return unix.Close(r.fd) }
