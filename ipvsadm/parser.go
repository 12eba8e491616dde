package ipvsadm

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// maxTimeout is ipvsadm's ceiling for every timeout: 31 days.
const maxTimeout = 86400 * 31

// defaultPersistence is the timeout -p takes without a value, in seconds:
// libipvs's IPVS_SVC_PERSISTENT_TIMEOUT, 6*60, which parse_timeout in
// ipvsadm.c returns for a bare -p. The man page and the LVS manual say
// 300; ipvsadm sends and lists 360.
const defaultPersistence = 6 * 60

// schedFlagOrder is the order ipvsadm prints scheduler flags in, and the
// only names -b accepts.
var schedFlagOrder = []string{
	"flag-1", "flag-2", "flag-3",
	"sh-fallback", "sh-port", "mh-fallback", "mh-port",
}

// OptionError is a refusal that ipvsadm 1.31 leaves to its option
// parser, popt, rather than making itself: an unknown option, a missing
// or unwanted option argument, or a command line whose first option is no
// command. ipvsadm exits 255 for these (tryhelp_exit(-1), or -1 returned
// from parse_options) and 2 for the refusals it makes itself (fail(2,
// ...)); ExitStatus tells them apart.
type OptionError struct{ Err error }

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// optionErrorf returns an OptionError with a formatted message.
func optionErrorf(format string, a ...any) error {
	return &OptionError{Err: fmt.Errorf(format, a...)}
}

// ExitStatus is the status ipvsadm 1.31 exits with when it refuses a
// command line with err: 255 for an OptionError, 2 for the rest.
func ExitStatus(err error) int {
	var oe *OptionError
	if errors.As(err, &oe) {
		return 255
	}
	return 2
}

// parser carries the state of one Parse call.
type parser struct {
	c       Command
	cmdName string // spelling of the command option, for messages
	seen    [numOpts]bool
	want6   bool // -6 given

	serverArg     string // -r argument, resolved once the service is known
	netmaskArg    string // -M argument, resolved once the family is known
	schedFlagsArg string // -b argument, checked against the final scheduler
	positional    []string
}

// Parse parses one ipvsadm command line, without the program name.
// It checks everything ipvsadm checks before talking to the kernel,
// except that the scheduler name is left to the caller. Errors are single
// lines worded like ipvsadm's, naming the offending value.
func Parse(args []string) (*Command, error) {
	p := parser{c: Command{Weight: 1, Fwd: Route, Netmask: 32}}
	if len(args) == 0 {
		p.c.Kind = List
		return &p.c, nil
	}
	if err := p.scan(args); err != nil {
		return nil, err
	}
	switch p.c.Kind {
	case 0:
		if len(p.positional) > 0 {
			return nil, optionErrorf("no command specified: got %q where a command such as -A or -L belongs", p.positional[0])
		}
		return nil, optionErrorf("no command specified: a command such as -A or -L is needed")
	case Help, Version:
		return &p.c, nil
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return &p.c, nil
}

// scan walks the words as popt does: options may be bundled ("-Ln"),
// option arguments may be attached ("-w5", "--weight=5"), "--" ends
// options, and other words are collected as positional arguments.
func (p *parser) scan(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			p.positional = append(p.positional, args[i+1:]...)
			return nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			sp := lookupLong(name)
			if sp == nil || name == "" {
				return optionErrorf("--%s: unknown option", name)
			}
			flag := "--" + name
			if hasVal && val == "" && sp.arg != argNone {
				return fmt.Errorf("%s=: empty argument", flag)
			}
			switch sp.arg {
			case argNone:
				if hasVal {
					return optionErrorf("%s: option does not take an argument", flag)
				}
			case argRequired:
				if !hasVal {
					if i+1 >= len(args) {
						return optionErrorf("%s: missing argument", flag)
					}
					i++
					val = args[i]
				}
			case argOptional:
				if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
					i++
					val, hasVal = args[i], true
				}
				if !hasVal {
					val = ""
				}
			}
			if err := p.apply(sp, flag, val); err != nil {
				return err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				sp := lookupShort(a[j])
				flag := "-" + string(a[j])
				if sp == nil {
					return optionErrorf("%q: unknown option", flag)
				}
				rest := a[j+1:]
				val := ""
				switch sp.arg {
				case argRequired:
					if rest == "" {
						if i+1 >= len(args) {
							return optionErrorf("%s: missing argument", flag)
						}
						i++
						rest = args[i]
					}
					val, j = rest, len(a)
				case argOptional:
					if rest == "" && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
						i++
						rest = args[i]
					}
					val, j = rest, len(a)
				}
				if err := p.apply(sp, flag, val); err != nil {
					return err
				}
				if p.c.Kind == Help || p.c.Kind == Version {
					return nil // as below: -hX is -h
				}
			}
		default:
			p.positional = append(p.positional, a)
		}
		if p.c.Kind == Help || p.c.Kind == Version {
			// ipvsadm prints and exits the moment it sees these.
			return nil
		}
	}
	return nil
}

func (p *parser) apply(sp *spec, flag, val string) error {
	if p.c.Kind == 0 && !sp.cmd {
		return optionErrorf("%s given before any command: the first option must be a command such as -A or -L", flag)
	}
	return sp.apply(p, flag, val)
}

func (p *parser) setCommand(k Kind, name string) error {
	if p.c.Kind != 0 {
		// ipvsadm reads the command from the first option only; a
		// command among the later ones is an option it does not know
		// there.
		return fmt.Errorf("invalid option `%s': multiple commands specified: %s and %s", name, p.cmdName, name)
	}
	p.c.Kind, p.cmdName = k, name
	return nil
}

// set records an option, refusing a second occurrence as ipvsadm does.
func (p *parser) set(id optID) error {
	if p.seen[id] {
		return fmt.Errorf("multiple '%s' options specified", optNames[id])
	}
	p.seen[id] = true
	return nil
}

func (p *parser) service(name, val string) error {
	if err := p.set(optService); err != nil {
		return err
	}
	proto := TCP
	if name == "-u" || name == "--udp-service" {
		proto = UDP
	}
	ap, err := parseAddrPort(val)
	if err != nil {
		return fmt.Errorf("illegal virtual server address[:port] specified: %q: %w", val, err)
	}
	p.c.HasService = true
	p.c.Service = Virtual{Proto: proto, Addr: ap.addr, Port: ap.port}
	return nil
}

func (p *parser) fwmark(_, val string) error {
	if err := p.set(optService); err != nil {
		return err
	}
	// ipvsadm 1.31's parse_fwmark reads the mark with strtol into an
	// unsigned long and refuses anything that is not a whole number in
	// 1..UINT_MAX: zero, a negative mark (which becomes larger than
	// UINT_MAX) and trailing text alike. strtol takes a leading '+'.
	n, ok := parseDecimal(strings.TrimPrefix(val, "+"), 1<<32-1)
	if !ok || n == 0 {
		return fmt.Errorf("invalid fwmark value `%s' specified: a firewall mark is an integer in 1..4294967295", val)
	}
	p.c.HasService = true
	p.c.Service = Virtual{Proto: FWM, FWMark: uint32(n)}
	return nil
}

func (p *parser) scheduler(_, val string) error {
	if err := p.set(optScheduler); err != nil {
		return err
	}
	// IPVS keeps scheduler names in 16 bytes with a terminator.
	if val == "" || len(val) > 15 {
		return fmt.Errorf("illegal scheduler specified: %q must be 1 to 15 characters", val)
	}
	p.c.Sched = val
	return nil
}

func (p *parser) persistent(_, val string) error {
	if err := p.set(optPersistent); err != nil {
		return err
	}
	p.c.Persistent = true
	if val == "" {
		p.c.Timeout = defaultPersistence
		return nil
	}
	n, ok := parseDecimal(val, maxTimeout)
	if !ok || n < 1 {
		return fmt.Errorf("invalid timeout value `%s' specified: persistence timeout must be in 1..%d seconds", val, maxTimeout)
	}
	p.c.Timeout = uint32(n)
	return nil
}

func (p *parser) netmask(_, val string) error {
	if err := p.set(optNetmask); err != nil {
		return err
	}
	p.netmaskArg = val
	return nil
}

func (p *parser) server(_, val string) error {
	if err := p.set(optServer); err != nil {
		return err
	}
	p.serverArg = val
	return nil
}

func (p *parser) weight(_, val string) error {
	if err := p.set(optWeight); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 65535)
	if !ok {
		return fmt.Errorf("illegal weight specified: %q is not an integer in 0..65535", val)
	}
	p.c.Weight = int(n)
	return nil
}

func (p *parser) threshold(name, val string) error {
	id, field, label := optUThreshold, &p.c.Upper, "u_threshold"
	if name == "-y" || name == "--l-threshold" {
		id, field, label = optLThreshold, &p.c.Lower, "l_threshold"
	}
	if err := p.set(id); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 1<<31-1)
	if !ok {
		return fmt.Errorf("illegal %s specified: %q is not an integer in 0..2147483647", label, val)
	}
	*field = uint32(n)
	return nil
}

// ipv6 is -6. ipvsadm 1.31 takes it only after -f: it sets the family of
// the mark read so far, and with no mark yet it refuses.
func (p *parser) ipv6(_, _ string) error {
	if p.c.Service.Proto != FWM {
		return errors.New("-6 used before -f: -6 makes the firewall mark given before it an IPv6 service")
	}
	p.want6 = true
	return nil
}

func (p *parser) onePacket(_, _ string) error {
	if err := p.set(optOnePacket); err != nil {
		return err
	}
	p.c.OnePacket = true
	return nil
}

func (p *parser) schedFlags(_, val string) error {
	if err := p.set(optSchedFlags); err != nil {
		return err
	}
	p.schedFlagsArg = val
	return nil
}

func (p *parser) tunType(_, val string) error {
	if err := p.set(optTunType); err != nil {
		return err
	}
	switch val {
	case "ipip":
		p.c.Tunnel.Type = IPIP
	case "gue":
		p.c.Tunnel.Type = GUE
	case "gre":
		p.c.Tunnel.Type = GRE
	default:
		return fmt.Errorf("illegal tunnel type specified: %q is not one of ipip, gue, gre", val)
	}
	return nil
}

func (p *parser) tunPort(_, val string) error {
	if err := p.set(optTunPort); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 65535)
	if !ok || n == 0 {
		return fmt.Errorf("illegal tunnel port specified: %q is not an integer in 1..65535", val)
	}
	p.c.Tunnel.Port = uint16(n)
	return nil
}

// daemonCommand is --start-daemon and --stop-daemon: the command and its
// master|backup argument.
func (p *parser) daemonCommand(name, val string) error {
	k, what := StartDaemon, "start-daemon parameter"
	if name == "--stop-daemon" {
		// ipvsadm 1.31 words this message so.
		k, what = StopDaemon, "start_daemon"
	}
	if err := p.setCommand(k, name); err != nil {
		return err
	}
	switch val {
	case "master":
		p.c.Daemon.State = Master
	case "backup":
		p.c.Daemon.State = Backup
	default:
		return fmt.Errorf("illegal %s specified: %q is not master or backup", what, val)
	}
	return nil
}

// ifNameMax is the longest interface name the kernel takes
// (IP_VS_IFNAME_MAXLEN less the terminator).
const ifNameMax = 15

func (p *parser) mcastInterface(_, val string) error {
	if err := p.set(optMcast); err != nil {
		return err
	}
	// ipvsadm cuts a long name to 15 bytes and the kernel then finds no
	// such device; refuse it instead.
	if val == "" || len(val) > ifNameMax || strings.ContainsAny(val, "/: \t\n") || val == "." || val == ".." {
		return fmt.Errorf("illegal mcast-interface specified: %q is not an interface name of 1 to %d characters", val, ifNameMax)
	}
	p.c.Daemon.McastIfn = val
	return nil
}

func (p *parser) syncID(_, val string) error {
	if err := p.set(optSyncID); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 255)
	if !ok {
		return fmt.Errorf("illegal syncid specified: %q is not an integer in 0..255", val)
	}
	p.c.Daemon.SyncID = uint8(n)
	return nil
}

func (p *parser) mcastGroup(_, val string) error {
	if err := p.set(optMcastGroup); err != nil {
		return err
	}
	// As ipvsadm: a value with a colon is IPv6 (inet_pton, which takes
	// no zone) and must be in ff00::/8 (IN6_IS_ADDR_MULTICAST, which an
	// IPv4-mapped ::ffff:224.0.0.81 is not); the daemon refuses further
	// groups that never leave the host (ipvssync.CheckGroup).
	a, err := netip.ParseAddr(val)
	if strings.Contains(val, ":") {
		if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() || !a.IsMulticast() {
			return fmt.Errorf("invalid IPv6 mcast-group `%s': not an IPv6 multicast address (ff00::/8)", val)
		}
	} else if err != nil || !a.Is4() || !a.IsMulticast() {
		return fmt.Errorf("invalid IPv4 mcast-group `%s': not an IPv4 multicast address (224.0.0.0/4)", val)
	}
	p.c.Daemon.McastGroup = a
	return nil
}

func (p *parser) mcastPort(_, val string) error {
	if err := p.set(optMcastPort); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 65535)
	if !ok || n < 1 {
		return fmt.Errorf("illegal mcast-port specified: %q is not an integer in 1..65535", val)
	}
	p.c.Daemon.McastPort = uint16(n)
	return nil
}

func (p *parser) mcastTTL(_, val string) error {
	if err := p.set(optMcastTTL); err != nil {
		return err
	}
	n, ok := parseDecimal(val, 255)
	if !ok || n < 1 {
		return fmt.Errorf("illegal mcast-ttl specified: %q is not an integer in 1..255", val)
	}
	p.c.Daemon.McastTTL = uint8(n)
	return nil
}

// maxSyncMaxlen is ipvsadm's ceiling for --sync-maxlen: a UDP payload in
// an IPv4 datagram.
const maxSyncMaxlen = 65535 - 20 - 8

func (p *parser) syncMaxlen(_, val string) error {
	if err := p.set(optSyncMaxlen); err != nil {
		return err
	}
	n, ok := parseDecimal(val, maxSyncMaxlen)
	if !ok || n < 1 {
		return fmt.Errorf("illegal sync-maxlen specified: %q is not an integer in 1..%d", val, maxSyncMaxlen)
	}
	p.c.Daemon.SyncMaxlen = uint16(n)
	return nil
}

// finish applies the checks ipvsadm makes once all options are read, in
// the same order, and fills in defaults that depend on several options.
func (p *parser) finish() error {
	c := &p.c
	// ipvsadm reads -M and -r as it meets them, and --set's values, other
	// words and then -b once all options are read, all before it checks
	// the options against the command (generic_opt_check); its errors
	// come in that order.
	if p.want6 {
		c.Service.IPv6 = true
	}

	c.Netmask = c.Service.bits()
	if p.seen[optNetmask] {
		n, err := parseNetmask(p.netmaskArg, c.Service.Is6())
		if err != nil {
			return err
		}
		c.Netmask = n
	}

	if p.seen[optServer] {
		ap, err := parseAddrPort(p.serverArg)
		if err != nil {
			return fmt.Errorf("illegal real server address[:port] specified: %q: %w", p.serverArg, err)
		}
		port := ap.port
		if !ap.hasPort {
			port = c.Service.Port
		}
		c.Server = netip.AddrPortFrom(ap.addr, port)
	}

	if c.Kind == SetTimeout {
		if len(p.positional) < 3 {
			return errors.New("--set option requires 3 timeout values")
		}
		var v [3]uint32
		for i, s := range p.positional[:3] {
			n, ok := parseDecimal(s, maxTimeout)
			if !ok {
				return fmt.Errorf("invalid timeout value `%s' specified: timeouts must be in 0..%d seconds", s, maxTimeout)
			}
			v[i] = uint32(n)
		}
		c.Timeouts = Timeouts{TCP: v[0], TCPFin: v[1], UDP: v[2]}
		p.positional = p.positional[3:]
	}
	if len(p.positional) > 0 {
		return fmt.Errorf("unexpected argument %s", p.positional[0])
	}
	if p.seen[optSchedFlags] {
		flags, err := parseSchedFlags(c.Sched, p.schedFlagsArg)
		if err != nil {
			return err
		}
		c.SchedFlags = flags
	}
	if err := checkRules(c.Kind, &p.seen); err != nil {
		return err
	}

	if c.Kind == AddService || c.Kind == EditService {
		if c.Service.Proto != FWM && c.Service.Port == 0 && !c.Persistent {
			return fmt.Errorf("Zero port specified for non-persistent service %s", hostPort(c.Service.Addr, 0))
		}
		if c.OnePacket && c.Service.Proto != FWM && c.Service.Proto != UDP {
			return errors.New("One-Packet Scheduling is only for UDP virtual services")
		}
		if c.Sched == "" {
			c.Sched = "wlc"
		}
	}

	if c.Kind == AddServer || c.Kind == EditServer {
		if err := p.checkServer(); err != nil {
			return err
		}
	}

	if c.Kind == StartDaemon && c.Daemon.McastIfn == "" {
		c.Daemon.McastIfn = defaultMcastIfn
	}

	if c.Kind == List {
		o := c.List
		if (o.Connection || o.Timeout || o.Daemon) && (o.Stats || o.Rate || o.Thresholds) ||
			(o.Timeout || o.Daemon) && o.PersistentConn {
			return errors.New("options conflicts in the list command")
		}
	}

	return nil
}

// checkServer holds the rules for -a and -e that depend on the
// forwarding method.
func (p *parser) checkServer() error {
	c := &p.c
	if c.Service.Proto != FWM && (c.Fwd == Tunnel || c.Fwd == Route) {
		// Without NAT the packet reaches the real server unchanged, so
		// its port can only be the service port.
		c.Server = netip.AddrPortFrom(c.Server.Addr(), c.Service.Port)
	}
	if c.Service.Proto != FWM && c.Server.Addr().Is6() != c.Service.Addr.Is6() && c.Fwd != Tunnel ||
		c.Service.Proto == FWM && c.Server.Addr().Is6() != c.Service.IPv6 && c.Fwd != Tunnel {
		return fmt.Errorf("Different address family is allowed only for tunneling servers: %s", c.Server.Addr())
	}
	tunOpts := p.seen[optTunType] || p.seen[optTunPort] || p.seen[optTunNoCsum] ||
		p.seen[optTunCsum] || p.seen[optTunRemCsum]
	if tunOpts && c.Fwd != Tunnel {
		return errors.New("Tunnel options conflict with forward method")
	}
	// ipvsadm's tunnel_opt_check walks tun-port, tun-nocsum, tun-csum and
	// tun-remcsum in that order against its tunnel_types_v_options row:
	// '+' compulsory, 'x' illegal, '1' at most one of them.
	opts := [...]optID{optTunPort, optTunNoCsum, optTunCsum, optTunRemCsum}
	rows := map[TunType]string{IPIP: "xxxx", GUE: "+111", GRE: "x11x"}
	row, name := rows[c.Tunnel.Type], c.Tunnel.Type.String()
	first := optID(numOpts)
	for j, id := range opts {
		switch {
		case !p.seen[id]:
			if row[j] == '+' {
				return fmt.Errorf("You need to supply the '%s' option for the '%s' tunnel type", optNames[id], name)
			}
		case row[j] == 'x':
			return fmt.Errorf("Illegal '%s' option with the '%s' tunnel type", optNames[id], name)
		case row[j] == '1' && first != numOpts:
			return fmt.Errorf("The option '%s' conflicts with the '%s' option in the '%s' tunnel type", optNames[id], optNames[first], name)
		case row[j] == '1':
			first = id
		}
	}
	return nil
}

// parseSchedFlags checks -b's comma-separated list against the scheduler
// that will use it (wlc when none is given, as in ipvsadm) and returns it
// deduplicated in print order.
func parseSchedFlags(sched, arg string) ([]string, error) {
	if sched == "" {
		sched = "wlc"
	}
	var got []string
	for f := range strings.SplitSeq(arg, ",") {
		if f == "" {
			continue
		}
		if !slices.Contains(schedFlagOrder, f) {
			return nil, fmt.Errorf("invalid scheduler flag `%s': must be one of %s", f, strings.Join(schedFlagOrder, ", "))
		}
		if prefix, _, _ := strings.Cut(f, "-"); (prefix == "sh" || prefix == "mh") && prefix != sched {
			return nil, fmt.Errorf("incompatible scheduler flag `%s': it needs the %s scheduler, not %s", f, prefix, sched)
		}
		got = append(got, f)
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("invalid scheduler flag `%s': no flag given", arg)
	}
	var out []string
	for _, f := range schedFlagOrder {
		if slices.Contains(got, f) {
			out = append(out, f)
		}
	}
	return out, nil
}
