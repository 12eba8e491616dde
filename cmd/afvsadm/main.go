// Command afvsadm administers a running afvs with ipvsadm's command line
// and prints ipvsadm 1.31's output formats, so scripts written for ipvsadm
// keep working. It talks to the daemon's control socket
// (/run/afvs/afvs.sock, or $AFVS_SOCKET).
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/ipvsadm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd, err := ipvsadm.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return 2
	}
	sock := os.Getenv("AFVS_SOCKET")
	if sock == "" {
		sock = control.DefaultSocket
	}
	c := control.NewClient(sock)
	switch cmd.Kind {
	case ipvsadm.Help:
		ipvsadm.Usage(stdout, "afvsadm")
		return 0
	case ipvsadm.Version:
		fmt.Fprintf(stdout, "afvsadm %s (ipvsadm v1.31 command line and output)\n", control.Version)
		return 0
	case ipvsadm.List, ipvsadm.Save:
		snap, err := snapshot(c, cmd)
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		if err := snap.Write(stdout, cmd); err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		return 0
	case ipvsadm.Restore:
		in, err := io.ReadAll(io.LimitReader(stdin, maxRestore+1))
		if err == nil && len(in) > maxRestore {
			err = fmt.Errorf("restore: input larger than %d bytes", maxRestore)
		}
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		cmds, err := ipvsadm.ParseRestore(bytes.NewReader(in))
		if err != nil {
			fmt.Fprintln(stderr, oneLine(err))
			return 1
		}
		lines := make([][]string, len(cmds))
		for i, x := range cmds {
			lines[i] = x.Args()
		}
		if err := c.Commands(lines); err != nil {
			fmt.Fprintln(stderr, oneLine(restoreLine(err, in)))
			return 1
		}
		return 0
	}
	if err := c.Commands([][]string{args}); err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		return 1
	}
	return 0
}

// maxRestore bounds what -R reads; a saved table of the largest size afvs
// holds is far smaller.
const maxRestore = 64 << 20

// serverCommand is how the daemon names a command of a batch.
var serverCommand = regexp.MustCompile(`^command (\d+)(\b.*)$`)

// restoreLine turns the daemon's "command N" into "restore line L", the
// line of the input that held the N-th command, as ParseRestore counts
// commands: comments and blank lines hold none.
func restoreLine(err error, in []byte) error {
	m := serverCommand.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	for i, line := range strings.Split(string(in), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		words := strings.Fields(line)
		if len(words) > 0 && (path.Base(words[0]) == "ipvsadm" || path.Base(words[0]) == "afvsadm") {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		if n--; n == 0 {
			return fmt.Errorf("restore line %d%s", i+1, m[2])
		}
	}
	return err
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// snapshot fetches what a listing or a save needs from the daemon.
func snapshot(c *control.Client, cmd *ipvsadm.Command) (*ipvsadm.Snapshot, error) {
	st, err := c.Status()
	if err != nil {
		return nil, err
	}
	snap := &ipvsadm.Snapshot{Size: int(st.Table.Capacity)}
	to, err := c.Timeouts()
	if err != nil {
		return nil, err
	}
	snap.Timeouts = ipvsadm.Timeouts{TCP: to.TCP, TCPFin: to.TCPFin, UDP: to.UDP}
	svcs, err := c.Services()
	if err != nil {
		return nil, err
	}
	// The daemon's answers are parsed, not trusted: a mismatched daemon
	// gets an error naming the field, never a panic.
	var perr error
	addr := func(what, v string) netip.Addr {
		a, err := netip.ParseAddr(v)
		if err != nil && perr == nil {
			perr = fmt.Errorf("afvs sent a bad %s %q: %w", what, v, err)
		}
		return a
	}
	addrPort := func(what, v string) netip.AddrPort {
		a, err := netip.ParseAddrPort(v)
		if err != nil && perr == nil {
			perr = fmt.Errorf("afvs sent a bad %s %q: %w", what, v, err)
		}
		return a
	}
	for _, s := range svcs {
		o := ipvsadm.Service{Sched: s.Scheduler, SchedFlags: s.SchedFlags, Persistent: s.Persistent, Timeout: s.Timeout, Netmask: 32,
			Stats: ipvsadm.Stats(s.Stats), Rate: ipvsadm.Rate(s.Rate)}
		switch s.Proto {
		case "fwm":
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.FWM, FWMark: s.FWMark}
		case "udp":
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.UDP, Addr: addr("service address", s.Address), Port: s.Port}
		default:
			o.Virtual = ipvsadm.Virtual{Proto: ipvsadm.TCP, Addr: addr("service address", s.Address), Port: s.Port}
		}
		if s.Netmask != "" {
			if m := addr("netmask", s.Netmask); m.Is4() {
				bits := 0
				for _, b := range m.As4() {
					for ; b&0x80 != 0; b <<= 1 {
						bits++
					}
				}
				o.Netmask = bits
			} else if perr == nil {
				perr = fmt.Errorf("afvs sent a bad netmask %q: not IPv4", s.Netmask)
			}
		}
		for _, r := range s.Reals {
			d := ipvsadm.Dest{Addr: addr("real server address", r.Address), Port: r.Port, Weight: int(r.Weight), Upper: r.Upper, Lower: r.Lower,
				Active: uint32(max(r.Active, 0)), Inactive: uint32(max(r.Inactive, 0)), PersistConns: uint32(max(r.PersistConns, 0)),
				Stats: ipvsadm.Stats(r.Stats), Rate: ipvsadm.Rate(r.Rate)}
			switch r.Forward {
			case "Tunnel":
				d.Fwd = ipvsadm.Tunnel
			case "Masq":
				d.Fwd = ipvsadm.Masq
			case "Local":
				d.Fwd = ipvsadm.Local
			default:
				d.Fwd = ipvsadm.Route
			}
			o.Dests = append(o.Dests, d)
		}
		snap.Services = append(snap.Services, o)
	}
	if cmd.List.Connection {
		conns, err := c.Conns()
		if err != nil {
			return nil, err
		}
		for _, x := range conns {
			k := ipvsadm.Conn{State: x.State, Expires: time.Duration(x.Expires * float64(time.Second)),
				Client: addrPort("client", x.Client), Virtual: addrPort("virtual", x.Virtual), Dest: addrPort("destination", x.Dest)}
			switch x.Proto {
			case "udp":
				k.Proto = ipvsadm.UDP
			case "tcp":
				k.Proto = ipvsadm.TCP
			default:
				k.Proto = ipvsadm.Proto(0)
			}
			snap.Conns = append(snap.Conns, k)
		}
	}
	if perr != nil {
		return nil, perr
	}
	return snap, nil
}
