package ipvsadm

import (
	"errors"
	"fmt"
)

// ErrNotSupported marks options that ipvsadm has but afvs cannot honour,
// such as persistence engines. Callers can test for it with
// errors.Is to tell "cannot apply" from "malformed".
var ErrNotSupported = errors.New("not supported by afvs")

// optID names an option for the legality rules. The names are the ones
// ipvsadm prints in its "Illegal 'x' option" messages.
type optID uint8

const (
	optNumeric optID = iota
	optConnection
	optService
	optScheduler
	optPersistent
	optNetmask
	optServer
	optForward
	optWeight
	optUThreshold
	optLThreshold
	optMcast
	optTimeout
	optDaemon
	optStats
	optRate
	optThresholds
	optPersistentConn
	optNoSort
	optSyncID
	optExact
	optOnePacket
	optSchedFlags
	optMcastGroup
	optMcastPort
	optMcastTTL
	optSyncMaxlen
	optTunInfo
	optTunType
	optTunPort
	optTunNoCsum
	optTunCsum
	optTunRemCsum
	numOpts
)

var optNames = [numOpts]string{
	"numeric", "connection", "service-address", "scheduler", "persistent",
	"netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate",
	"thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen",
	"tun-info", "tun-type", "tun-port", "tun-nocsum", "tun-csum",
	"tun-remcsum",
}

// rules says, per command, which options are compulsory ('+'), illegal
// ('x'), optional (' ') or mutually exclusive with each other ('1').
// Columns follow optID. It encodes the same legality as ipvsadm 1.31
// (whose table also has a --pe column; afvs refuses --pe while parsing);
// Help and Version are absent because they end parsing at once.
var rules = map[Kind]string{
	// columns: n c t|u|f s p M r g|i|m w x y mcast-interface timeout daemon
	// stats rate thresholds persistent-conn nosort syncid exact o b
	// mcast-group mcast-port mcast-ttl sync-maxlen
	// tun-info tun-type tun-port nocsum csum remcsum
	AddService:    "xx+   xxxxxxxxxxxxxxx  xxxxxxxxxx",
	EditService:   "xx+   xxxxxxxxxxxxxxx  xxxxxxxxxx",
	DeleteService: "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Clear:         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	List:          " 11xxxxxxxxx11       xxxxxx xxxxx",
	AddServer:     "xx+xxx+    xxxxxxxxxxxxxxxxx     ",
	EditServer:    "xx+xxx+    xxxxxxxxxxxxxxxxx     ",
	DeleteServer:  "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxx",
	SetTimeout:    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	StartDaemon:   "xxxxxxxxxxx xxxxxxx xxx    xxxxxx",
	StopDaemon:    "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxx",
	Restore:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Save:          " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	Zero:          "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// checkRules applies the rules table the way ipvsadm does: the first
// missing compulsory option, illegal option or second exclusive option,
// in column order, is the one reported.
func checkRules(k Kind, seen *[numOpts]bool) error {
	row := rules[k]
	first := -1
	for j := range numOpts {
		r := row[j]
		if !seen[j] {
			if r == '+' {
				return fmt.Errorf("You need to supply the '%s' option for the '%s' command", optNames[j], k)
			}
			continue
		}
		switch r {
		case 'x':
			return fmt.Errorf("Illegal '%s' option with the '%s' command", optNames[j], k)
		case '1':
			if first >= 0 {
				return fmt.Errorf("The option '%s' conflicts with the '%s' option in the '%s' command", optNames[j], optNames[first], k)
			}
			first = int(j)
		}
	}
	return nil
}

// argMode says whether an option takes an argument.
type argMode uint8

const (
	argNone argMode = iota
	argRequired
	argOptional // only -p: the next word is taken unless it starts with '-'
)

// spec is one entry of the option table: how it is spelled, whether it
// takes an argument, and what it does to the parser.
type spec struct {
	long  string
	short byte
	arg   argMode
	cmd   bool // a command, which must come first
	apply func(p *parser, name, val string) error
}

// specs lists every option of ipvsadm 1.31. Lookups scan it; it is short
// and parsing is not a hot path.
var specs = []spec{
	{"add-service", 'A', argNone, true, command(AddService)},
	{"edit-service", 'E', argNone, true, command(EditService)},
	{"delete-service", 'D', argNone, true, command(DeleteService)},
	{"clear", 'C', argNone, true, command(Clear)},
	{"list", 'L', argNone, true, command(List)},
	{"", 'l', argNone, true, command(List)},
	{"zero", 'Z', argNone, true, command(Zero)},
	{"add-server", 'a', argNone, true, command(AddServer)},
	{"edit-server", 'e', argNone, true, command(EditServer)},
	{"delete-server", 'd', argNone, true, command(DeleteServer)},
	{"set", 0, argNone, true, command(SetTimeout)},
	{"help", 'h', argNone, true, command(Help)},
	{"version", 'v', argNone, true, command(Version)},
	{"restore", 'R', argNone, true, command(Restore)},
	{"save", 'S', argNone, true, command(Save)},
	{"start-daemon", 0, argRequired, true, (*parser).daemonCommand},
	{"stop-daemon", 0, argRequired, true, (*parser).daemonCommand},
	{"tcp-service", 't', argRequired, false, (*parser).service},
	{"udp-service", 'u', argRequired, false, (*parser).service},
	{"sctp-service", 0, argRequired, false, unsupported("SCTP services")},
	{"fwmark-service", 'f', argRequired, false, (*parser).fwmark},
	{"scheduler", 's', argRequired, false, (*parser).scheduler},
	{"persistent", 'p', argOptional, false, (*parser).persistent},
	{"netmask", 'M', argRequired, false, (*parser).netmask},
	{"real-server", 'r', argRequired, false, (*parser).server},
	{"masquerading", 'm', argNone, false, forward(Masq)},
	{"ipip", 'i', argNone, false, forward(Tunnel)},
	{"gatewaying", 'g', argNone, false, forward(Route)},
	{"weight", 'w', argRequired, false, (*parser).weight},
	{"u-threshold", 'x', argRequired, false, (*parser).threshold},
	{"l-threshold", 'y', argRequired, false, (*parser).threshold},
	{"numeric", 'n', argNone, false, listFlag(optNumeric, func(o *ListOptions) *bool { return &o.Numeric })},
	{"connection", 'c', argNone, false, listFlag(optConnection, func(o *ListOptions) *bool { return &o.Connection })},
	{"mcast-interface", 0, argRequired, false, (*parser).mcastInterface},
	{"syncid", 0, argRequired, false, (*parser).syncID},
	{"timeout", 0, argNone, false, listFlag(optTimeout, func(o *ListOptions) *bool { return &o.Timeout })},
	{"daemon", 0, argNone, false, listFlag(optDaemon, func(o *ListOptions) *bool { return &o.Daemon })},
	{"stats", 0, argNone, false, listFlag(optStats, func(o *ListOptions) *bool { return &o.Stats })},
	{"rate", 0, argNone, false, listFlag(optRate, func(o *ListOptions) *bool { return &o.Rate })},
	{"thresholds", 0, argNone, false, listFlag(optThresholds, func(o *ListOptions) *bool { return &o.Thresholds })},
	{"persistent-conn", 0, argNone, false, listFlag(optPersistentConn, func(o *ListOptions) *bool { return &o.PersistentConn })},
	{"nosort", 0, argNone, false, listFlag(optNoSort, func(o *ListOptions) *bool { return &o.NoSort })},
	// --sort is the default and a no-op kept for old scripts.
	{"sort", 0, argNone, false, func(*parser, string, string) error { return nil }},
	{"exact", 'X', argNone, false, listFlag(optExact, func(o *ListOptions) *bool { return &o.Exact })},
	{"ipv6", '6', argNone, false, (*parser).ipv6},
	{"ops", 'o', argNone, false, (*parser).onePacket},
	{"pe", 0, argRequired, false, unsupported("persistence engines")},
	{"sched-flags", 'b', argRequired, false, (*parser).schedFlags},
	{"mcast-group", 0, argRequired, false, (*parser).mcastGroup},
	{"mcast-port", 0, argRequired, false, (*parser).mcastPort},
	{"mcast-ttl", 0, argRequired, false, (*parser).mcastTTL},
	{"sync-maxlen", 0, argRequired, false, (*parser).syncMaxlen},
	{"tun-info", 0, argNone, false, listFlag(optTunInfo, func(o *ListOptions) *bool { return &o.TunInfo })},
	{"tun-type", 0, argRequired, false, (*parser).tunType},
	{"tun-port", 0, argRequired, false, (*parser).tunPort},
	{"tun-nocsum", 0, argNone, false, tunCsum(optTunNoCsum, NoCsum)},
	{"tun-csum", 0, argNone, false, tunCsum(optTunCsum, Csum)},
	{"tun-remcsum", 0, argNone, false, tunCsum(optTunRemCsum, RemCsum)},
}

func lookupLong(name string) *spec {
	for i := range specs {
		if specs[i].long == name {
			return &specs[i]
		}
	}
	return nil
}

func lookupShort(c byte) *spec {
	for i := range specs {
		if specs[i].short == c {
			return &specs[i]
		}
	}
	return nil
}

func command(k Kind) func(*parser, string, string) error {
	return func(p *parser, name, _ string) error { return p.setCommand(k, name) }
}

func unsupported(what string) func(*parser, string, string) error {
	return func(_ *parser, name, _ string) error {
		return fmt.Errorf("%s: %s is %w", name, what, ErrNotSupported)
	}
}

func forward(f Fwd) func(*parser, string, string) error {
	return func(p *parser, _, _ string) error {
		if err := p.set(optForward); err != nil {
			return err
		}
		p.c.Fwd = f
		return nil
	}
}

func listFlag(id optID, field func(*ListOptions) *bool) func(*parser, string, string) error {
	return func(p *parser, _, _ string) error {
		if err := p.set(id); err != nil {
			return err
		}
		*field(&p.c.List) = true
		return nil
	}
}

func tunCsum(id optID, c TunCsum) func(*parser, string, string) error {
	return func(p *parser, _, _ string) error {
		if err := p.set(id); err != nil {
			return err
		}
		p.c.Tunnel.Csum = c
		return nil
	}
}
