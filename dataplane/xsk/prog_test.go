package xsk

import (
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// attachRedirect attaches, in native mode, an XDP program that redirects
// every frame of ifindex to the socket fd registered for the frame's RX
// queue, and passes frames of queues without one. Production steering
// lives in package xdpprog; this is the least a test needs.
func attachRedirect(t testing.TB, p *pair, fd int) {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		t.Fatalf("create xskmap: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Put(uint32(0), uint32(fd)); err != nil {
		t.Fatalf("put xsk fd %d in xskmap: %v", fd, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // xdp_md.rx_queue_index
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the queue has no socket
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load redirect program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	attach(t, p.nsA, p.ifA, prog)
}

// attachDrop attaches an XDP_DROP program to B, a cheap sink for
// benchmarks that only transmit.
func attachDrop(t testing.TB, p *pair) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load drop program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	attach(t, p.nsB, p.ifB, prog)
}

func attach(t testing.TB, ns nsHandle, ifindex int, prog *ebpf.Program) {
	t.Helper()
	var l link.Link
	var err error
	in(t, ns, func() {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	})
	if err != nil {
		t.Fatalf("attach xdp to ifindex %d in native mode: %v", ifindex, err)
	}
	t.Cleanup(func() { l.Close() })
}

// testEtherType marks test frames (IEEE local experimental EtherType) so
// packet sockets see nothing else.
const testEtherType = 0x88b5

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket is an AF_PACKET socket bound to one interface that sends and
// receives only test frames.
type packetSocket struct {
	fd      int
	ifindex int
}

func openPacket(t testing.TB, ns nsHandle, ifindex int) *packetSocket {
	t.Helper()
	var fd int
	var err error
	in(t, ns, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(testEtherType)))
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(testEtherType), Ifindex: ifindex})
		}
	})
	if err != nil {
		t.Fatalf("open packet socket on ifindex %d: %v", ifindex, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((2 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatalf("set receive timeout: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		t.Fatalf("set receive buffer: %v", err)
	}
	return &packetSocket{fd: fd, ifindex: ifindex}
}

func (ps *packetSocket) send(t testing.TB, frame []byte) {
	t.Helper()
	to := &unix.SockaddrLinklayer{Protocol: htons(testEtherType), Ifindex: ps.ifindex, Halen: 6}
	copy(to.Addr[:], frame[:6])
	if err := unix.Sendto(ps.fd, frame, 0, to); err != nil {
		t.Fatalf("send %d-byte frame: %v", len(frame), err)
	}
}

// recv returns the next incoming frame, or nil after the receive timeout.
func (ps *packetSocket) recv(t testing.TB, buf []byte) []byte {
	t.Helper()
	for {
		n, from, err := unix.Recvfrom(ps.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return buf[:n]
	}
}

// testFrame builds frame number seq of n bytes from src to dst: an
// Ethernet header with the test EtherType, the sequence number, and a
// pattern derived from both, so corruption and reordering show.
func testFrame(dst, src net.HardwareAddr, seq uint32, n int) []byte {
	f := make([]byte, n)
	writeTestFrame(f, dst, src, seq)
	return f
}

func writeTestFrame(f []byte, dst, src net.HardwareAddr, seq uint32) {
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], testEtherType)
	binary.BigEndian.PutUint32(f[14:18], seq)
	for i := 18; i < len(f); i++ {
		f[i] = byte(seq*7 + uint32(i))
	}
}

// frameLen gives test frames a spread of sizes, minimum to full MTU.
func frameLen(seq uint32) int { return 60 + int(seq*37)%(1514-60+1) }
