package xdpprog

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Mode selects where in the receive path an XDP program runs.
type Mode int

const (
	// ModeAuto tries native (driver) mode and falls back to generic mode;
	// Attachment.Mode reports which one took.
	ModeAuto Mode = iota
	// ModeNative runs the program in the driver, before an skb exists.
	ModeNative
	// ModeGeneric runs the program after the skb is built; it works on any
	// device but is slower and copies frames for AF_XDP.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode maps the config spelling of a mode ("auto", "native",
// "generic") to a Mode.
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeAuto, ModeNative, ModeGeneric} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("xdp mode %q: must be one of auto, native, generic", s)
}

// Attachment is a program attached to an interface through a bpf_link. The
// link is owned by the file descriptor inside it: when the process exits,
// however it exits, the kernel closes the descriptor and detaches the
// program, so a crashed director never leaves the interface black-holed.
type Attachment struct {
	l       link.Link
	mode    Mode
	ifindex int
}

// Mode reports the mode the program actually runs in: ModeNative or
// ModeGeneric, never ModeAuto.
func (a Attachment) Mode() Mode { return a.mode }

// Ifindex is the interface the program is attached to.
func (a Attachment) Ifindex() int { return a.ifindex }

// Close detaches the program. Closing a zero Attachment is a no-op.
func (a Attachment) Close() error {
	if a.l == nil {
		return nil
	}
	if err := a.l.Close(); err != nil {
		return fmt.Errorf("detach xdp from ifindex %d: %w", a.ifindex, err)
	}
	return nil
}

// attach links prog to ifindex in the requested mode. The link is created
// in the network namespace of the calling thread.
func attach(prog *ebpf.Program, ifindex int, mode Mode) (Attachment, error) {
	if ifindex < 1 {
		return Attachment{}, fmt.Errorf("attach xdp: ifindex %d must be at least 1", ifindex)
	}
	try := func(m Mode, flags link.XDPAttachFlags) (Attachment, error) {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
		if err != nil {
			return Attachment{}, fmt.Errorf("attach xdp to ifindex %d in %s mode: %w", ifindex, m, err)
		}
		return Attachment{l: l, mode: m, ifindex: ifindex}, nil
	}
	switch mode {
	case ModeNative:
		return try(ModeNative, link.XDPDriverMode)
	case ModeGeneric:
		return try(ModeGeneric, link.XDPGenericMode)
	case ModeAuto:
		a, nativeErr := try(ModeNative, link.XDPDriverMode)
		if nativeErr == nil {
			return a, nil
		}
		a, genericErr := try(ModeGeneric, link.XDPGenericMode)
		if genericErr == nil {
			return a, nil
		}
		return Attachment{}, errors.Join(nativeErr, genericErr)
	}
	return Attachment{}, fmt.Errorf("attach xdp to ifindex %d: mode %d must be auto, native or generic", ifindex, int(mode))
}
