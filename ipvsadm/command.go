package ipvsadm

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/afvs/afvs/vs"
)

// Kind is the command an ipvsadm command line asks for. Exactly one is
// given per line; ipvsadm with no arguments at all means List.
type Kind uint8

const (
	// List prints the table (-L, -l, --list, or no arguments).
	List Kind = iota + 1
	// AddService creates a virtual service (-A, --add-service).
	AddService
	// EditService replaces a virtual service's options (-E, --edit-service).
	EditService
	// DeleteService removes a virtual service (-D, --delete-service).
	DeleteService
	// Clear removes every virtual service (-C, --clear).
	Clear
	// Restore reads commands in -S format from stdin (-R, --restore).
	Restore
	// Save prints the table as commands (-S, --save).
	Save
	// AddServer adds a real server to a service (-a, --add-server).
	AddServer
	// EditServer replaces a real server's options (-e, --edit-server).
	EditServer
	// DeleteServer removes a real server (-d, --delete-server).
	DeleteServer
	// Zero zeroes counters of one or all services (-Z, --zero).
	Zero
	// SetTimeout sets the tcp, tcpfin and udp timeouts (--set).
	SetTimeout
	// Help prints the usage text (-h, --help).
	Help
	// Version prints the program version (-v, --version).
	Version
	// StartDaemon starts a connection sync daemon (--start-daemon).
	StartDaemon
	// StopDaemon stops a connection sync daemon (--stop-daemon).
	StopDaemon
)

var kindNames = [...]string{
	List:          "list",
	AddService:    "add-service",
	EditService:   "edit-service",
	DeleteService: "delete-service",
	Clear:         "flush",
	Restore:       "restore",
	Save:          "save",
	AddServer:     "add-server",
	EditServer:    "edit-server",
	DeleteServer:  "delete-server",
	Zero:          "zero",
	SetTimeout:    "set",
	Help:          "help",
	Version:       "version",
	StartDaemon:   "start-daemon",
	StopDaemon:    "stop-daemon",
}

// String returns the name ipvsadm uses for the command in its messages.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// flag is the short option of the commands Args renders with one.
func (k Kind) flag() string {
	switch k {
	case AddService:
		return "-A"
	case EditService:
		return "-E"
	case AddServer:
		return "-a"
	case EditServer:
		return "-e"
	}
	return "-d"
}

// Proto is the protocol of a virtual service as ipvsadm holds it. TCP and
// UDP are the model's protocols (vs.Proto, the IP protocol numbers);
// firewall-mark services match packets by mark, not by protocol, so FWM
// stands beside them, and IP names a firewall-mark service's templates.
type Proto uint8

const (
	// IP is IPPROTO_IP: the kernel lists a firewall-mark service's
	// persistence templates with it ("IP" in -L -c).
	IP Proto = 0
	// TCP is a -t service.
	TCP = Proto(vs.TCP)
	// UDP is a -u service.
	UDP = Proto(vs.UDP)
	// FWM is a -f (firewall mark) service.
	FWM Proto = 255
)

// VS returns the model's protocol of a TCP or UDP service; ok is false for
// FWM and IP, which the model keys by mark instead.
func (p Proto) VS() (proto vs.Proto, ok bool) {
	switch p {
	case TCP, UDP:
		return vs.Proto(p), true
	}
	return 0, false
}

// String returns the protocol as the listing prints it: the model's name
// in capitals for TCP and UDP.
func (p Proto) String() string {
	switch p {
	case FWM:
		return "FWM"
	case IP:
		return "IP"
	}
	if v, ok := p.VS(); ok {
		return strings.ToUpper(v.String())
	}
	return "?"
}

// Fwd is a real server's packet-forwarding method: the model's, whose
// String is the listing's Forward column.
type Fwd = vs.Fwd

const (
	// Route is direct routing (-g), the default.
	Route = vs.Route
	// Tunnel is IP-in-IP (or GUE) encapsulation (-i).
	Tunnel = vs.Tunnel
	// Masq is NAT (-m).
	Masq = vs.Masq
	// Local is a real server on the director itself; IPVS picks it on
	// its own when a -g server's address is local, so no option names it.
	Local = vs.Local
)

// fwdFlag returns the option -S writes for method f; a local server was
// added with -g, so it is saved as one.
func fwdFlag(f Fwd) string {
	switch f {
	case Tunnel:
		return "-i"
	case Masq:
		return "-m"
	}
	return "-g"
}

// TunType is the encapsulation of a Tunnel real server.
type TunType uint8

const (
	// IPIP is plain IP-in-IP, the default.
	IPIP TunType = iota
	// GUE is generic UDP encapsulation; it needs a port.
	GUE
	// GRE is GRE encapsulation, with or without a checksum. ipvsadm 1.31
	// accepts it; afvs refuses it when the command is applied.
	GRE
)

// String returns the name --tun-type takes.
func (t TunType) String() string {
	switch t {
	case GUE:
		return "gue"
	case GRE:
		return "gre"
	}
	return "ipip"
}

// TunCsum is the checksum mode of a GUE tunnel. The values follow the
// kernel's flag bits so the lead can pass them through.
type TunCsum uint8

const (
	// NoCsum sends GUE without a UDP checksum (--tun-nocsum), the default.
	NoCsum TunCsum = iota
	// Csum sends a UDP checksum (--tun-csum).
	Csum
	// RemCsum uses remote checksum offload (--tun-remcsum).
	RemCsum
)

// TunnelInfo describes how a Tunnel real server is reached.
type TunnelInfo struct {
	Type TunType
	Port uint16 // GUE destination port; 0 for IPIP
	Csum TunCsum
}

// Virtual identifies a virtual service: protocol, address and port, or a
// firewall mark.
type Virtual struct {
	Proto  Proto
	Addr   netip.Addr // invalid for FWM services
	Port   uint16     // 0 for FWM services
	FWMark uint32     // non-zero only for FWM services
	// IPv6 marks a firewall-mark service as IPv6 (-6). For address
	// services the family follows Addr.
	IPv6 bool
}

// Is6 reports whether the service is IPv6.
func (v Virtual) Is6() bool {
	if v.Proto == FWM {
		return v.IPv6
	}
	return v.Addr.Is6()
}

// bits is the length of a full mask in the service's family, which is
// also the default persistence granularity.
func (v Virtual) bits() int {
	if v.Is6() {
		return 128
	}
	return 32
}

// flag returns the service as -S writes it: "-t addr:port", "-f 7 -6".
// ipvsadm prints the mark with %u, so every mark reads back as itself.
func (v Virtual) flag() string {
	switch v.Proto {
	case FWM:
		s := "-f " + strconv.FormatUint(uint64(v.FWMark), 10)
		if v.IPv6 {
			s += " -6"
		}
		return s
	case UDP:
		return "-u " + hostPort(v.Addr, v.Port)
	}
	return "-t " + hostPort(v.Addr, v.Port)
}

// hostPort formats an address and port numerically as ipvsadm does:
// IPv6 addresses go in brackets.
func hostPort(a netip.Addr, port uint16) string {
	var b strings.Builder
	if a.Is6() {
		b.WriteByte('[')
		b.WriteString(ntop6(a))
		b.WriteByte(']')
	} else {
		b.WriteString(a.String())
	}
	b.WriteByte(':')
	b.WriteString(strconv.FormatUint(uint64(port), 10))
	return b.String()
}

// ntop6 writes an IPv6 address as glibc's inet_ntop does, which ipvsadm
// prints with. It is RFC 5952's text, as netip's, but for one case: when
// the first six 16-bit words are 0 and the seventh is not (an
// IPv4-compatible address, ::/96), inet_ntop6 writes the last 32 bits as
// a dotted quad, "::192.0.2.1" where netip writes "::c000:201".
// (::ffff:0:0/96, IPv4-mapped, is dotted by both.)
func ntop6(a netip.Addr) string {
	b := a.As16()
	for _, x := range b[:12] {
		if x != 0 {
			return a.String()
		}
	}
	if b[12] == 0 && b[13] == 0 {
		return a.String()
	}
	return "::" + netip.AddrFrom4([4]byte(b[12:])).String()
}

// ListOptions are the options of -L that change what is printed.
type ListOptions struct {
	Numeric        bool // -n; listings are always numeric in afvs
	Connection     bool // -c
	Timeout        bool // --timeout
	Stats          bool // --stats
	Rate           bool // --rate
	Thresholds     bool // --thresholds
	PersistentConn bool // --persistent-conn
	NoSort         bool // --nosort
	Exact          bool // --exact (-X)
	TunInfo        bool // --tun-info
	Daemon         bool // --daemon
}

// DaemonState is a sync daemon's role; the values are the kernel's
// IP_VS_STATE_MASTER and IP_VS_STATE_BACKUP bits.
type DaemonState uint8

const (
	// Master sends the director's connections.
	Master DaemonState = 1
	// Backup receives a master's connections.
	Backup DaemonState = 2
)

// String returns the word --start-daemon takes and the listing prints.
func (s DaemonState) String() string {
	switch s {
	case Master:
		return "master"
	case Backup:
		return "backup"
	}
	return "daemon(" + strconv.Itoa(int(s)) + ")"
}

// defaultMcastIfn is the interface ipvsadm names when --start-daemon is
// given no --mcast-interface.
const defaultMcastIfn = "eth0"

// Daemon is a connection sync daemon's settings, as --start-daemon gives
// them and -L --daemon prints them (libipvs's ipvs_daemon_t). Zero values
// are "not given": the daemon then uses the kernel's defaults (group
// 224.0.0.81, port 8848, TTL 1, maximum length from the MTU).
type Daemon struct {
	State      DaemonState
	McastIfn   string     // --mcast-interface, "eth0" by default
	SyncID     uint8      // --syncid, 0 by default
	SyncMaxlen uint16     // --sync-maxlen
	McastGroup netip.Addr // --mcast-group; invalid when not given
	McastPort  uint16     // --mcast-port
	McastTTL   uint8      // --mcast-ttl
}

// Timeouts are the connection timeouts of --set, in seconds. Zero leaves a
// value unchanged, as in IPVS.
type Timeouts struct {
	TCP    uint32
	TCPFin uint32
	UDP    uint32
}

// Command is one parsed ipvsadm command line. Fields a command does not
// use keep ipvsadm's defaults: scheduler wlc, forwarding Route, weight 1,
// full-length persistence mask.
type Command struct {
	Kind Kind

	// HasService is false only for commands that may omit the service
	// (-L, -Z) and did.
	HasService bool
	Service    Virtual

	Sched      string   // scheduler name as given; "wlc" by default for -A/-E
	SchedFlags []string // -b flags, deduplicated, in ipvsadm's print order
	Persistent bool     // -p given
	Timeout    uint32   // persistence timeout in seconds (-p [timeout], default 360)
	Netmask    int      // persistence granularity as a prefix length (-M)
	OnePacket  bool     // -o, UDP one-packet scheduling

	// Server is the real server of -a, -e and -d. Its port defaults to
	// the service port, and is forced to it for -g and -i, as IPVS cannot
	// change the port without NAT.
	Server netip.AddrPort
	Fwd    Fwd
	Weight int
	Upper  uint32 // -x, 0 means no limit
	Lower  uint32 // -y
	Tunnel TunnelInfo

	List ListOptions

	// Timeouts holds the three values of --set.
	Timeouts Timeouts

	// Daemon is the sync daemon of --start-daemon and --stop-daemon
	// (which uses only its State).
	Daemon Daemon
}

// Args renders the command as a canonical argument list that Parse turns
// back into an equal Command.
func (c *Command) Args() []string {
	var a []string
	switch c.Kind {
	case AddService, EditService:
		a = append(a, c.Kind.flag())
		a = append(a, strings.Fields(c.Service.flag())...)
		a = append(a, "-s", c.Sched)
		if c.Persistent {
			a = append(a, "-p", strconv.FormatUint(uint64(c.Timeout), 10))
		}
		if c.Netmask != c.Service.bits() {
			a = append(a, "-M", maskString(c.Netmask, c.Service.Is6()))
		}
		if c.OnePacket {
			a = append(a, "-o")
		}
		if len(c.SchedFlags) > 0 {
			a = append(a, "-b", strings.Join(c.SchedFlags, ","))
		}
	case DeleteService:
		a = append(a, "-D")
		a = append(a, strings.Fields(c.Service.flag())...)
	case Clear:
		a = append(a, "-C")
	case Restore:
		a = append(a, "-R")
	case Save:
		a = append(a, "-S")
		if c.List.Numeric {
			a = append(a, "-n")
		}
	case AddServer, EditServer, DeleteServer:
		a = append(a, c.Kind.flag())
		a = append(a, strings.Fields(c.Service.flag())...)
		a = append(a, "-r", hostPort(c.Server.Addr(), c.Server.Port()))
		if c.Kind == DeleteServer {
			break
		}
		a = append(a, fwdFlag(c.Fwd), "-w", strconv.Itoa(c.Weight))
		if c.Upper != 0 {
			a = append(a, "-x", strconv.FormatUint(uint64(c.Upper), 10))
		}
		if c.Lower != 0 {
			a = append(a, "-y", strconv.FormatUint(uint64(c.Lower), 10))
		}
		if c.Fwd == Tunnel && c.Tunnel.Type == GUE {
			a = append(a, "--tun-type", "gue", "--tun-port", strconv.Itoa(int(c.Tunnel.Port)))
			a = append(a, c.Tunnel.Csum.option())
		}
		if c.Fwd == Tunnel && c.Tunnel.Type == GRE {
			a = append(a, "--tun-type", "gre", c.Tunnel.Csum.option())
		}
	case List:
		a = append(a, "-L")
		if c.HasService {
			a = append(a, strings.Fields(c.Service.flag())...)
		}
		o := c.List
		for _, f := range []struct {
			on   bool
			name string
		}{
			{o.Numeric, "-n"}, {o.Connection, "-c"}, {o.Timeout, "--timeout"},
			{o.Stats, "--stats"}, {o.Rate, "--rate"}, {o.Thresholds, "--thresholds"},
			{o.PersistentConn, "--persistent-conn"}, {o.NoSort, "--nosort"},
			{o.Exact, "--exact"}, {o.TunInfo, "--tun-info"}, {o.Daemon, "--daemon"},
		} {
			if f.on {
				a = append(a, f.name)
			}
		}
	case Zero:
		a = append(a, "-Z")
		if c.HasService {
			a = append(a, strings.Fields(c.Service.flag())...)
		}
	case SetTimeout:
		t := c.Timeouts
		a = append(a, "--set",
			strconv.FormatUint(uint64(t.TCP), 10),
			strconv.FormatUint(uint64(t.TCPFin), 10),
			strconv.FormatUint(uint64(t.UDP), 10))
	case StartDaemon:
		d := c.Daemon
		a = append(a, "--start-daemon", d.State.String(), "--mcast-interface", d.McastIfn)
		if d.SyncID != 0 {
			a = append(a, "--syncid", strconv.Itoa(int(d.SyncID)))
		}
		if d.SyncMaxlen != 0 {
			a = append(a, "--sync-maxlen", strconv.Itoa(int(d.SyncMaxlen)))
		}
		if d.McastGroup.IsValid() {
			a = append(a, "--mcast-group", d.McastGroup.String())
		}
		if d.McastPort != 0 {
			a = append(a, "--mcast-port", strconv.Itoa(int(d.McastPort)))
		}
		if d.McastTTL != 0 {
			a = append(a, "--mcast-ttl", strconv.Itoa(int(d.McastTTL)))
		}
	case StopDaemon:
		a = append(a, "--stop-daemon", c.Daemon.State.String())
		if c.Daemon.SyncID != 0 {
			a = append(a, "--syncid", strconv.Itoa(int(c.Daemon.SyncID)))
		}
	case Help:
		a = append(a, "-h")
	case Version:
		a = append(a, "-v")
	}
	return a
}
