package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
	"github.com/afvs/afvs/sched"
	"github.com/afvs/afvs/vs"
)

// Config is the whole daemon configuration.
type Config struct {
	// Interfaces receive virtual-service traffic: the steering program is
	// attached to each and one worker serves each RX queue.
	Interfaces []string `mapstructure:"interfaces"`
	// XDPMode is auto (best the device supports), native or generic.
	XDPMode string `mapstructure:"xdp_mode"`
	// CPUs overrides the queue->CPU pinning: "ifname:queue" -> cpu.
	CPUs map[string]int `mapstructure:"cpus"`
	// Frames is the number of UMEM frames per socket.
	Frames int `mapstructure:"frames"`
	// Rings sizes each socket's RX and fill rings.
	Rings RingsConfig `mapstructure:"rings"`
	// VIPMACs gives an interface one more destination MAC, besides its
	// own, whose frames the steering program redirects: interface name ->
	// a unicast MAC (a VRRP virtual MAC, say). Frames addressed to any
	// other MAC go to the kernel, so a director forwards only traffic
	// sent to it.
	VIPMACs map[string]string `mapstructure:"vip_macs"`

	Table    TableConfig     `mapstructure:"table"`
	Timeouts TimeoutsConfig  `mapstructure:"timeouts"`
	IPVS     IPVSConfig      `mapstructure:"ipvs"`
	Services []ServiceConfig `mapstructure:"services"`
	Marks    []MarkConfig    `mapstructure:"marks"`
	Health   HealthConfig    `mapstructure:"health"`
	ICMP     ICMPConfig      `mapstructure:"icmp"`
	Poll     PollConfig      `mapstructure:"poll"`
	Defense  DefenseConfig   `mapstructure:"defense"`
	Metrics  MetricsConfig   `mapstructure:"metrics"`
	Control  ControlConfig   `mapstructure:"control"`
	Log      LogConfig       `mapstructure:"log"`
	Sync     SyncConfig      `mapstructure:"sync"`
}

// SyncConfig is connection sync (ipvsadm --start-daemon): a master, a
// backup, or both, each enabled by naming its interface. Start and every
// reload put it in force; afvsadm --start-daemon and --stop-daemon change
// it at run time until the next reload.
type SyncConfig struct {
	Master SyncDaemonConfig `mapstructure:"master"`
	Backup SyncDaemonConfig `mapstructure:"backup"`
	// FlushInterval is how long a master holds a partly filled message
	// before sending it (the kernel's IPVS_SYNC_FLUSH_TIME, 2s).
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// SyncDaemonConfig is one sync daemon, with ipvsadm's option names; 0 or
// "" takes the kernel's default.
type SyncDaemonConfig struct {
	Interface string `mapstructure:"interface"` // --mcast-interface; "" = this daemon is off
	SyncID    int    `mapstructure:"syncid"`    // --syncid, 0..255
	MaxLen    int    `mapstructure:"maxlen"`    // --sync-maxlen, 0 (from the MTU) or 1..65507
	Group     string `mapstructure:"group"`     // --mcast-group, IPv4 or IPv6, default 224.0.0.81
	Port      int    `mapstructure:"port"`      // --mcast-port, default 8848
	TTL       int    `mapstructure:"ttl"`       // --mcast-ttl, 1..255, default 1
}

// Daemon converts a configured daemon for the sync daemon's manager;
// ok is false when it is off. Validate has checked it.
func (d SyncDaemonConfig) Daemon(state ipvsadm.DaemonState) (ipvsadm.Daemon, bool) {
	if d.Interface == "" {
		return ipvsadm.Daemon{}, false
	}
	out := ipvsadm.Daemon{State: state, McastIfn: d.Interface, SyncID: uint8(d.SyncID), SyncMaxlen: uint16(d.MaxLen),
		McastPort: uint16(d.Port), McastTTL: uint8(d.TTL)}
	if g, err := netip.ParseAddr(d.Group); err == nil {
		out.McastGroup = g
	}
	return out, true
}

// SyncDaemons lists the configured daemons, master first.
func (c *Config) SyncDaemons() []ipvsadm.Daemon {
	var out []ipvsadm.Daemon
	if d, ok := c.Sync.Master.Daemon(ipvsadm.Master); ok {
		out = append(out, d)
	}
	if d, ok := c.Sync.Backup.Daemon(ipvsadm.Backup); ok {
		out = append(out, d)
	}
	return out
}

// SyncSettings converts the ipvs section's sync sysctls. Validate has
// checked them.
func (c *Config) SyncSettings() ipvssync.Settings {
	s := ipvssync.DefaultSettings
	if len(c.IPVS.SyncThreshold) == 2 {
		s.Threshold, s.Period = c.IPVS.SyncThreshold[0], c.IPVS.SyncThreshold[1]
	}
	s.RefreshPeriod = ipvssync.Ticks(c.IPVS.SyncRefreshPeriod / time.Millisecond)
	s.Retries = c.IPVS.SyncRetries
	s.PersistMode = c.IPVS.SyncPersistMode != 0
	return s
}

func (d SyncDaemonConfig) validate(key string) error {
	if d.Interface == "" {
		if d != (SyncDaemonConfig{}) {
			return fmt.Errorf("%s.interface: required when any other %s key is set", key, key)
		}
		return nil
	}
	if len(d.Interface) > 15 || strings.ContainsAny(d.Interface, "/ \t") {
		return fmt.Errorf("%s.interface: %q: must be a Linux interface name (1-15 characters, no '/' or spaces)", key, d.Interface)
	}
	if d.SyncID < 0 || d.SyncID > 255 {
		return fmt.Errorf("%s.syncid: %d: must be 0..255", key, d.SyncID)
	}
	if d.MaxLen < 0 || d.MaxLen > 65507 {
		return fmt.Errorf("%s.maxlen: %d: must be 0 (from the MTU) or 1..65507", key, d.MaxLen)
	}
	if d.Group != "" {
		g, err := netip.ParseAddr(d.Group)
		if err != nil {
			return fmt.Errorf("%s.group: %q: must be an IPv4 or IPv6 multicast address such as 224.0.0.81 or ff02::51", key, d.Group)
		}
		if err := ipvssync.CheckGroup(g); err != nil {
			return fmt.Errorf("%s.group: %q: %w", key, d.Group, err)
		}
	}
	if d.Port < 0 || d.Port > 65535 {
		return fmt.Errorf("%s.port: %d: must be 0 (8848) or 1..65535", key, d.Port)
	}
	if d.TTL < 0 || d.TTL > 255 {
		return fmt.Errorf("%s.ttl: %d: must be 0 (1) or 1..255", key, d.TTL)
	}
	return nil
}

// RingsConfig sizes an AF_XDP socket's RX ring (frames the kernel has
// received and the worker not yet taken) and fill ring (empty frames
// handed to the kernel to receive into), in descriptors: powers of two
// of at least 64 and at most frames. The kernel drops a frame when the
// RX ring is full (kernel_rx_ring_full) or the fill ring empty
// (kernel_rx_fill_ring_empty), so together they bound the burst a
// worker absorbs while busy. 0 keeps the default, 2048.
type RingsConfig struct {
	RX   int `mapstructure:"rx"`
	Fill int `mapstructure:"fill"`
}

// TableConfig sizes the connection table.
type TableConfig struct {
	Capacity  int `mapstructure:"capacity"`
	Templates int `mapstructure:"templates"`
	// NAT keeps the VS/NAT reply index beside the table, sized like it
	// and mapped at start; false saves that memory and refuses VS/NAT
	// real servers.
	NAT bool `mapstructure:"nat"`
}

// TimeoutsConfig are ipvsadm --set's three timeouts. Zero keeps the IPVS default.
type TimeoutsConfig struct {
	TCP    time.Duration `mapstructure:"tcp"`
	TCPFin time.Duration `mapstructure:"tcpfin"`
	UDP    time.Duration `mapstructure:"udp"`
}

// Persistence is a service's persistent key: a timeout in seconds, 0 for
// off. The loader also takes a boolean: true is a bare -p, whose timeout
// is vs.DefaultPersistTimeout (libipvs's IPVS_SVC_PERSISTENT_TIMEOUT, 360),
// and false is off.
type Persistence int

// IPVSConfig holds the IPVS sysctls (net.ipv4.vs.*) that shape a
// connection's life, with the kernel's names, values and defaults; see
// conntrack.Sysctls for what each does. A reload applies them from the
// next packet.
type IPVSConfig struct {
	// ConnReuseMode: 0 off; 1 (default) a SYN on an uncontrolled TIME_WAIT
	// or CLOSE entry is scheduled as a new connection; 2 or 3 also on a
	// FIN_WAIT entry (every DR/TUN one).
	ConnReuseMode int `mapstructure:"conn_reuse_mode"`
	// ExpireNodestConn: 1 expires an entry whose real server is gone at
	// its next packet (and reschedules a SYN to a weight-0 server); 0
	// (default) drops such packets and lets the entry time out.
	ExpireNodestConn int `mapstructure:"expire_nodest_conn"`
	// ExpireQuiescentTemplate: 1 drops a persistence template whose real
	// server has weight 0 at its next use; 0 (default) keeps sending its
	// clients there until it expires.
	ExpireQuiescentTemplate int `mapstructure:"expire_quiescent_template"`
	// SloppyTCP: 1 lets any TCP packet but a RST without a connection
	// entry create one (a director taking over connections it never saw
	// open); 0 (default) only a SYN. UDP packets always create entries.
	SloppyTCP int `mapstructure:"sloppy_tcp"`
	// DropEntry, DropPacket and SecureTCP are IPVS's flood defences
	// (drop_entry, drop_packet, secure_tcp): 0 off (default), 1 automatic
	// while the connection table has fewer than AmemThresh free entries,
	// 3 always; see conntrack.Defense. A reload applies them.
	DropEntry  int `mapstructure:"drop_entry"`
	DropPacket int `mapstructure:"drop_packet"`
	SecureTCP  int `mapstructure:"secure_tcp"`
	// AmemThresh is the free-entry threshold of the automatic modes
	// (IPVS's amemthresh, there in pages; default 1024 entries).
	AmemThresh int `mapstructure:"amemthresh"`
	// AmDropRate is drop_packet's rate in mode 3: one new connection in
	// this many is dropped (am_droprate, default 10).
	AmDropRate int `mapstructure:"am_droprate"`
	// SyncThreshold is sync_threshold, [threshold, period]: a sync master
	// sends a connection when its packet count modulo period equals
	// threshold (period 0: once, at threshold). Default (and empty)
	// [3, 50].
	SyncThreshold []int `mapstructure:"sync_threshold"`
	// SyncRefreshPeriod is sync_refresh_period: with it, an unchanged
	// connection is sent again only when its copy on the backup would
	// run out sooner than this; 0 (default) off.
	SyncRefreshPeriod time.Duration `mapstructure:"sync_refresh_period"`
	// SyncRetries is sync_retries, 0..3: re-sends of a connection the
	// refresh period holds back.
	SyncRetries int `mapstructure:"sync_retries"`
	// SyncPersistMode is sync_persist_mode: 1 sends only the templates of
	// persistent connections, not the connections.
	SyncPersistMode int `mapstructure:"sync_persist_mode"`
}

// DefenseConfig limits the new TCP connections a second each client
// address and each virtual service may open (0: no limit), with buckets
// of Burst (0: one second of the rate). A source asking BlockFactor times
// its rate (0: never) is dropped in the steering program for BlockFor
// (0: never). A reload applies them, except BlockFor, which takes effect
// at restart.
type DefenseConfig struct {
	SYNRatePerSource  int           `mapstructure:"syn_rate_per_source"`
	SYNRatePerService int           `mapstructure:"syn_rate_per_service"`
	Burst             int           `mapstructure:"burst"`
	BlockFactor       int           `mapstructure:"block_factor"`
	BlockFor          time.Duration `mapstructure:"block_for"`
	// BlockPrefix6 is block_prefix6: an IPv6 source is blocked, and held
	// to syn_rate_per_source, by its prefix of this length (1 to 128;
	// default, and 0, 64), taking effect at restart.
	BlockPrefix6 int `mapstructure:"block_prefix6"`
	// SYNProxy turns the SYN proxy on for every TCP service (IPv4 or
	// IPv6) whose real servers are all VS/NAT ones (dataplane/synproxy.go); a
	// service's own syn_proxy wins over it.
	SYNProxy bool `mapstructure:"syn_proxy"`
}

// IPVSDefense converts the ipvs section's defences for the connection
// table. Validate has checked them.
func (c *Config) IPVSDefense() conntrack.Defense {
	return conntrack.Defense{DropEntry: c.IPVS.DropEntry, DropPacket: c.IPVS.DropPacket, SecureTCP: c.IPVS.SecureTCP,
		AmemThresh: c.IPVS.AmemThresh, AmDropRate: c.IPVS.AmDropRate}
}

// SYNLimits converts the defense section for the workers' SYN limiter.
func (c *Config) SYNLimits() dataplane.SYNLimits {
	return dataplane.SYNLimits{PerSource: c.Defense.SYNRatePerSource, PerService: c.Defense.SYNRatePerService,
		Burst: c.Defense.Burst, BlockFactor: c.Defense.BlockFactor}
}

// parseVIPMAC parses a configured owner MAC: six bytes, unicast, not
// all zeros.
func parseVIPMAC(s string) ([6]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return [6]byte{}, errors.New("must be an Ethernet MAC such as 00:00:5e:00:01:33")
	}
	m := [6]byte(hw)
	if m == ([6]byte{}) {
		return m, errors.New("must not be all zeros")
	}
	if m[0]&1 != 0 {
		return m, errors.New("is a group (multicast or broadcast) address: must be unicast")
	}
	return m, nil
}

// VIPMACsByInterface converts vip_macs for the dataplane. Validate has
// checked it.
func (c *Config) VIPMACsByInterface() map[string][6]byte {
	out := make(map[string][6]byte, len(c.VIPMACs))
	for name, s := range c.VIPMACs {
		if m, err := parseVIPMAC(s); err == nil {
			out[name] = m
		}
	}
	return out
}

// Sysctls converts the ipvs section for the connection table. Validate
// has checked it.
func (c *Config) Sysctls() conntrack.Sysctls {
	return conntrack.Sysctls{
		ConnReuseMode:           c.IPVS.ConnReuseMode,
		ExpireNodestConn:        c.IPVS.ExpireNodestConn != 0,
		ExpireQuiescentTemplate: c.IPVS.ExpireQuiescentTemplate != 0,
		SloppyTCP:               c.IPVS.SloppyTCP != 0,
	}
}

// ServiceConfig is one virtual service.
type ServiceConfig struct {
	Proto      string       `mapstructure:"proto"`
	Address    string       `mapstructure:"address"`
	Port       int          `mapstructure:"port"`
	FWMark     int          `mapstructure:"fwmark"`
	IPv6       bool         `mapstructure:"ipv6"` // a fwmark service of the IPv6 family (ipvsadm -f N -6)
	Scheduler  string       `mapstructure:"scheduler"`
	SchedFlags []string     `mapstructure:"sched_flags"`
	Persistent Persistence  `mapstructure:"persistent"` // seconds; 0 = off
	Netmask    string       `mapstructure:"netmask"`    // IPv4: a dotted mask; IPv6: a prefix length, as ipvsadm's -M
	Forward    string       `mapstructure:"forward"`    // default for the reals: dr, tun or nat
	Reals      []RealConfig `mapstructure:"reals"`
	// OPS is ipvsadm's -o (keepalived's "ops"): one-packet scheduling,
	// each UDP datagram scheduled on its own with no connection kept.
	OPS bool `mapstructure:"ops"`
	// Health, when set, is this service's own check (a keepalived
	// virtual_server's checker) and timing; what it leaves out is the
	// top-level health section's, which must be on.
	Health *ServiceHealth `mapstructure:"health"`
	// Sorry is keepalived's sorry_server: a real server that takes the
	// service's new connections while health checks find every one of
	// its real servers down. It needs health checks on.
	Sorry *RealConfig `mapstructure:"sorry"`
	// SYNRate, when above 0, is this service's limit of new TCP
	// connections a second, instead of defense.syn_rate_per_service.
	SYNRate int `mapstructure:"syn_rate"`
	// SYNProxy, when set, turns the SYN proxy on or off for this service
	// instead of defense.syn_proxy. On needs a TCP (or firewall-mark)
	// service, IPv4 or IPv6, whose real servers are all VS/NAT ones.
	SYNProxy *bool `mapstructure:"syn_proxy"`
}

// SYNProxyServices returns the services' own syn_proxy settings, by
// service key, or an error naming a service that cannot be proxied.
func (c *Config) SYNProxyServices() (map[vs.Key]bool, error) {
	m := map[vs.Key]bool{}
	for i, sc := range c.Services {
		if sc.SYNProxy == nil {
			continue
		}
		p := fmt.Sprintf("services[%d]", i)
		s, err := sc.service(p)
		if err != nil {
			return nil, err
		}
		if *sc.SYNProxy {
			if s.FWMark == 0 && s.Proto != vs.TCP {
				return nil, fmt.Errorf("%s.syn_proxy: true: the SYN proxy needs a TCP service, not %s", p, s.Key)
			}
			for _, r := range s.Reals {
				if r.Fwd != vs.Masq {
					return nil, fmt.Errorf("%s.syn_proxy: true: the SYN proxy needs every real server to be nat; %s forwards by %s", p, netip.AddrPortFrom(r.Addr, r.Port), r.Fwd)
				}
			}
		}
		m[s.Key] = *sc.SYNProxy
	}
	return m, nil
}

// SYNServiceRates returns the services' own SYN rates, by service key.
func (c *Config) SYNServiceRates() (map[vs.Key]int, error) {
	m := map[vs.Key]int{}
	for i, sc := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		if sc.SYNRate < 0 || sc.SYNRate > dataplane.MaxSYNRate {
			return nil, fmt.Errorf("%s.syn_rate: %d: must be 0 (defense.syn_rate_per_service) to %d new connections a second", p, sc.SYNRate, dataplane.MaxSYNRate)
		}
		if sc.SYNRate == 0 {
			continue
		}
		s, err := sc.service(p)
		if err != nil {
			return nil, err
		}
		m[s.Key] = sc.SYNRate
	}
	return m, nil
}

// ServiceHealth is one service's check: Type as in HealthConfig, plus udp
// (keepalived's UDP_CHECK), or empty for the top-level check, and Port,
// checked instead of each real server's own (keepalived's connect_port;
// needed for port-0 servers). Interval, Timeout, Rise and Fall, when not
// 0, replace the top-level ones for this service's real servers
// (keepalived's delay_loop, connect_timeout, retry and the successes to
// come back, per virtual_server).
type ServiceHealth struct {
	Type        string        `mapstructure:"type"`
	Path        string        `mapstructure:"path"`
	Status      int           `mapstructure:"status"`
	Digest      string        `mapstructure:"digest"`
	VirtualHost string        `mapstructure:"virtualhost"`
	DNSType     string        `mapstructure:"dns_type"`
	DNSName     string        `mapstructure:"dns_name"`
	HELOName    string        `mapstructure:"helo_name"`
	Command     []string      `mapstructure:"command"`
	Port        int           `mapstructure:"port"`
	Interval    time.Duration `mapstructure:"interval"`
	Timeout     time.Duration `mapstructure:"timeout"`
	Rise        int           `mapstructure:"rise"`
	Fall        int           `mapstructure:"fall"`
}

// ServiceHealth returns the services that have a check of their own, by
// service key.
func (c *Config) ServiceHealth() (map[vs.Key]ServiceHealth, error) {
	m := map[vs.Key]ServiceHealth{}
	for i, sc := range c.Services {
		if sc.Health == nil {
			continue
		}
		s, err := sc.service(fmt.Sprintf("services[%d]", i))
		if err != nil {
			return nil, err
		}
		m[s.Key] = *sc.Health
	}
	return m, nil
}

// SorryServers returns the services' sorry servers, by service key.
func (c *Config) SorryServers() (map[vs.Key]vs.Real, error) {
	m := map[vs.Key]vs.Real{}
	for i, sc := range c.Services {
		if sc.Sorry == nil {
			continue
		}
		p := fmt.Sprintf("services[%d]", i)
		s, err := sc.service(p)
		if err != nil {
			return nil, err
		}
		fwd, err := vs.ParseFwd(sc.Forward)
		if err != nil {
			return nil, fmt.Errorf("%s.forward: %w", p, err)
		}
		r, err := sc.Sorry.real(p+".sorry", fwd, s.Port)
		if err != nil {
			return nil, err
		}
		if r.Weight == 0 {
			r.Weight = 1 // a sorry server at weight 0 would take nothing
		}
		if s.FindReal(r.Addr, r.Port) >= 0 {
			return nil, fmt.Errorf("%s.sorry: %s is one of the service's real servers", p, r.AddrPort())
		}
		// It joins the service as one more real server, so the rules for
		// real servers hold: only nat rewrites the port, and only a tunnel
		// reaches a server of the other family.
		if s.FWMark == 0 && r.Fwd != vs.Masq && r.Port != s.Port {
			return nil, fmt.Errorf("%s.sorry.port: %d: only a nat real server's port may differ from the service's (%d); dr and tun deliver the packet unchanged", p, r.Port, s.Port)
		}
		// The dataplane gets it only when the checks find every real
		// server down, so what it cannot forward is refused here, not then.
		trial := s
		trial.Reals = append(slices.Clone(s.Reals), r)
		if err := trial.Validate(); err != nil {
			return nil, fmt.Errorf("%s.sorry: %w", p, err)
		}
		m[s.Key] = r
	}
	return m, nil
}

// validate checks a service's own health check; p is its key path, top
// the top-level health section.
func (h *ServiceHealth) validate(p string, top *HealthConfig) error {
	if top.Interval <= 0 {
		return fmt.Errorf("%s: a service's own check needs health checks on (health.interval above 0)", p)
	}
	if h.Port < 0 || h.Port > 65535 {
		return fmt.Errorf("%s.port: %d: must be 0..65535 (0: each real server's own port)", p, h.Port)
	}
	if h.Interval < 0 {
		return fmt.Errorf("%s.interval: %s: must not be negative (0: health.interval)", p, h.Interval)
	}
	if h.Timeout < 0 {
		return fmt.Errorf("%s.timeout: %s: must not be negative (0: health.timeout)", p, h.Timeout)
	}
	if h.Rise < 0 || h.Fall < 0 {
		return fmt.Errorf("%s.rise/fall: %d/%d: must not be negative (0: health.rise/fall)", p, h.Rise, h.Fall)
	}
	// As at the top level, a timeout above the interval is refused; one
	// taken from health.timeout must fit the service's interval too.
	interval, timeout, from := top.Interval, top.Timeout, "health.timeout"
	if h.Interval > 0 {
		interval = h.Interval
	}
	if h.Timeout > 0 {
		timeout, from = h.Timeout, p+".timeout"
	}
	if timeout > interval {
		return fmt.Errorf("%s.timeout: %s (%s): must be at most the service's interval (%s)", p, timeout, from, interval)
	}
	if err := checkOptions(p, h.Type, h.Digest, h.VirtualHost, h.DNSType, h.DNSName, h.HELOName); err != nil {
		return err
	}
	switch h.Type {
	case "":
		if h.Path != "" || h.Status != 0 || len(h.Command) != 0 {
			return fmt.Errorf("%s.type: path, status and command need a type (empty: the top-level check, %s)", p, top.Type)
		}
	case "tcp", "udp", "dns", "smtp":
	case "http", "https":
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			return fmt.Errorf("%s.path: %q: must start with /", p, h.Path)
		}
		if h.Status != 0 && (h.Status < 100 || h.Status > 599) {
			return fmt.Errorf("%s.status: %d: must be an HTTP status 100..599", p, h.Status)
		}
	case "exec":
		if len(h.Command) == 0 || !strings.HasPrefix(h.Command[0], "/") {
			return fmt.Errorf("%s.command: %q: type exec needs a program given by its absolute path, then its arguments", p, h.Command)
		}
	default:
		return fmt.Errorf("%s.type: %q: must be tcp, udp, http, https, dns, smtp or exec (or left out: the top-level check)", p, h.Type)
	}
	return nil
}

// The values of dns_type, dns_name and helo_name left out: keepalived's
// DNS_CHECK defaults (the root's SOA record) and a HELO name of our own.
const (
	DefaultDNSType  = "SOA"
	DefaultDNSName  = "."
	DefaultHELOName = "localhost"
)

// DNSTypes are the query types dns_type takes (in either case), those of
// keepalived's DNS_CHECK.
var DNSTypes = []string{"A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"}

// checkOptions validates the options that belong to one check type: the
// digest and virtualhost of http and https, dns_type and dns_name of dns,
// helo_name of smtp. p is the section's key path, typ its type.
func checkOptions(p, typ, digest, vhost, dnsType, dnsName, helo string) error {
	only := func(key, val string, types ...string) error {
		if val != "" && !slices.Contains(types, typ) {
			return fmt.Errorf("%s.%s: %q: only for type %s (type is %q)", p, key, val, strings.Join(types, " or "), typ)
		}
		return nil
	}
	for _, err := range []error{
		only("digest", digest, "http", "https"),
		only("virtualhost", vhost, "http", "https"),
		only("dns_type", dnsType, "dns"),
		only("dns_name", dnsName, "dns"),
		only("helo_name", helo, "smtp"),
	} {
		if err != nil {
			return err
		}
	}
	if digest != "" {
		if _, err := hex.DecodeString(digest); err != nil || len(digest) != 32 {
			return fmt.Errorf("%s.digest: %q: must be an MD5 sum, 32 hex digits (as md5sum or keepalived's genhash print it)", p, digest)
		}
	}
	if vhost != "" && (len(vhost) > 255 || strings.ContainsFunc(vhost, func(r rune) bool { return r <= ' ' || r >= 0x7f })) {
		return fmt.Errorf("%s.virtualhost: %q: must be a host name (with an optional :port) of at most 255 printable ASCII characters without spaces", p, vhost)
	}
	if dnsType != "" && !slices.Contains(DNSTypes, strings.ToUpper(dnsType)) {
		return fmt.Errorf("%s.dns_type: %q: must be one of %s", p, dnsType, strings.Join(DNSTypes, ", "))
	}
	if dnsName != "" && !validDNSName(dnsName) {
		return fmt.Errorf("%s.dns_name: %q: must be a domain name: labels of 1 to 63 characters joined by dots, at most 253 in all (\".\" is the root)", p, dnsName)
	}
	if helo != "" && (len(helo) > 255 || strings.ContainsFunc(helo, func(r rune) bool { return r <= ' ' || r >= 0x7f })) {
		return fmt.Errorf("%s.helo_name: %q: must be a host name of at most 255 printable ASCII characters without spaces", p, helo)
	}
	return nil
}

// validDNSName reports whether name is "." or labels of 1 to 63 bytes of
// printable ASCII joined by dots, with an optional final dot, 253 bytes
// at most without it.
func validDNSName(name string) bool {
	if name == "." {
		return true
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return false
	}
	for l := range strings.SplitSeq(name, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// RealConfig is one real server.
type RealConfig struct {
	Address string `mapstructure:"address"`
	Port    int    `mapstructure:"port"` // 0 = the service's port
	Weight  *int   `mapstructure:"weight"`
	Forward string `mapstructure:"forward"`
	Upper   int    `mapstructure:"upper"`
	Lower   int    `mapstructure:"lower"`
}

// MarkConfig defines the firewall-mark group for -f MARK services.
type MarkConfig struct {
	Mark    int           `mapstructure:"mark"`
	Name    string        `mapstructure:"name"`
	Matches []MatchConfig `mapstructure:"matches"`
}

// MatchConfig is one (address, protocol, ports) of a mark group. Ports is
// "80", "8000-8099" or empty for all ports.
type MatchConfig struct {
	Proto   string `mapstructure:"proto"`
	Address string `mapstructure:"address"`
	Ports   string `mapstructure:"ports"`
}

// HealthConfig configures real-server health checks.
type HealthConfig struct {
	Interval time.Duration `mapstructure:"interval"`
	Timeout  time.Duration `mapstructure:"timeout"`
	Rise     int           `mapstructure:"rise"`
	Fall     int           `mapstructure:"fall"`
	// Type is tcp (a connect, keepalived's TCP_CHECK), http (a GET of
	// Path that must answer Status, keepalived's HTTP_GET), https (the same
	// over TLS without certificate verification, keepalived's SSL_GET) or
	// exec (Command
	// must exit 0, keepalived's MISC_CHECK; "{addr}" and "{port}" in its
	// arguments become the real server's, "{hostport}" both as a dial
	// string, an IPv6 address in brackets).
	//
	// dns is keepalived's DNS_CHECK: a query over UDP for DNSName's
	// DNSType record (default DefaultDNSName, DefaultDNSType) must be
	// answered with RCODE 0, for real servers of TCP and UDP services
	// alike; smtp is SMTP_CHECK: a 220 greeting, 250 to "HELO HELOName"
	// (default DefaultHELOName) and a reply to QUIT. Digest, for http and
	// https, is keepalived's digest: the MD5 of the body, in hex, wanted
	// as well as Status; VirtualHost, for http and https, keepalived's
	// virtualhost: the Host header the GET carries.
	Type        string   `mapstructure:"type"`
	Path        string   `mapstructure:"path"`
	Status      int      `mapstructure:"status"`
	Digest      string   `mapstructure:"digest"`
	VirtualHost string   `mapstructure:"virtualhost"`
	DNSType     string   `mapstructure:"dns_type"`
	DNSName     string   `mapstructure:"dns_name"`
	HELOName    string   `mapstructure:"helo_name"`
	Command     []string `mapstructure:"command"`
	// OnFailure is what a failed real server gets, keepalived's choice:
	// quiesce (weight 0, keepalived's inhibit_on_failure: established
	// connections continue, no new ones) or remove (taken out of the
	// service, to the trash, so its connections resume when it returns).
	OnFailure string `mapstructure:"on_failure"`
}

// MetricsConfig is where /metrics listens; empty disables it.
type MetricsConfig struct {
	Address string `mapstructure:"address"`
}

// ControlConfig is the control API's unix socket.
type ControlConfig struct {
	Socket string `mapstructure:"socket"`
}

// ICMPConfig limits the ICMP errors (fragmentation needed) the director
// sends, all workers together, like Linux's icmp_msgs_per_sec and
// icmp_msgs_burst.
type ICMPConfig struct {
	Rate  int `mapstructure:"rate"`  // messages a second
	Burst int `mapstructure:"burst"` // messages at once
	// HostInterval and HostBurst limit the messages to each client, as
	// Linux's icmp_ratelimit does: one per HostInterval in bursts of
	// HostBurst; an interval of 0 turns the per-client limit off.
	HostInterval time.Duration `mapstructure:"host_interval"`
	HostBurst    int           `mapstructure:"host_burst"`
}

// PollConfig is how the workers wait for frames. Mode adaptive
// busy-polls while frames arrive and for Spin after the last one, then
// sleeps in poll(2); busy never sleeps; sleep sleeps whenever the RX ring
// is empty. A reload applies it.
type PollConfig struct {
	Mode string        `mapstructure:"mode"`
	Spin time.Duration `mapstructure:"spin"`
}

// MaxPollSpin bounds poll.spin.
const MaxPollSpin = time.Second

// LogConfig sets the log level: debug, info, warn or error.
type LogConfig struct {
	Level string `mapstructure:"level"`
}

// Defaults are the built-in values every key starts from.
func Defaults() map[string]any {
	return map[string]any{
		"xdp_mode":              "auto",
		"frames":                4096,
		"table.capacity":        1 << 20,
		"table.templates":       1 << 16,
		"table.nat":             true,
		"health.interval":       "0s",
		"health.timeout":        "1s",
		"health.rise":           2,
		"health.fall":           3,
		"health.type":           "tcp",
		"health.path":           "/",
		"health.status":         200,
		"health.on_failure":     "quiesce",
		"ipvs.conn_reuse_mode":  1,
		"ipvs.amemthresh":       conntrack.DefaultAmemThresh,
		"ipvs.am_droprate":      conntrack.DefaultAmDropRate,
		"defense.block_for":     "60s",
		"defense.block_prefix6": 64,
		"ipvs.sync_threshold":   []int{3, 50},
		"icmp.rate":             1000,
		"icmp.burst":            50,
		"icmp.host_interval":    "1s",
		"icmp.host_burst":       6,
		"poll.mode":             "adaptive",
		"poll.spin":             "50us",
		"metrics.address":       "127.0.0.1:9469",
		"control.socket":        "/run/afvs/afvs.sock",
		"log.level":             "info",
	}
}

// Limits on sizes, so a typo cannot ask for all memory.
const (
	MaxICMPRate  = 1_000_000
	MaxCapacity  = 1 << 26
	MaxTemplates = 1 << 24
	MaxFrames    = 1 << 18
)

// MaxSocketPath is the longest path a unix socket can be bound to: struct
// sockaddr_un's sun_path is 108 bytes, NUL included.
const MaxSocketPath = 107

// Validate checks everything that can be checked without the network and
// returns the first problem, naming its key path.
func (c *Config) Validate() error {
	t, err := c.VS()
	if err != nil {
		return err
	}
	if err := c.checkNATLayout(t); err != nil {
		return err
	}
	for i, name := range c.Interfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t") {
			return fmt.Errorf("interfaces[%d]: %q: must be a Linux interface name (1-15 characters, no '/' or spaces)", i, name)
		}
	}
	switch c.XDPMode {
	case "auto", "native", "generic":
	default:
		return fmt.Errorf("xdp_mode: %q: must be auto, native or generic", c.XDPMode)
	}
	for k, cpu := range c.CPUs {
		dev, q, ok := strings.Cut(k, ":")
		if _, err := strconv.Atoi(q); !ok || dev == "" || err != nil {
			return fmt.Errorf("cpus.%s: key must be interface:queue, e.g. eth0:0", k)
		}
		if cpu < 0 || cpu > 4095 {
			return fmt.Errorf("cpus.%s: cpu %d: must be 0..4095", k, cpu)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.VIPMACs)) {
		if !slices.Contains(c.Interfaces, name) {
			return fmt.Errorf("vip_macs.%s: not one of interfaces %v", name, c.Interfaces)
		}
		if _, err := parseVIPMAC(c.VIPMACs[name]); err != nil {
			return fmt.Errorf("vip_macs.%s: %q: %w", name, c.VIPMACs[name], err)
		}
	}
	if c.Frames < 64 || c.Frames > MaxFrames || c.Frames&(c.Frames-1) != 0 {
		return fmt.Errorf("frames: %d: must be a power of two in 64..%d", c.Frames, MaxFrames)
	}
	for key, n := range map[string]int{"rings.rx": c.Rings.RX, "rings.fill": c.Rings.Fill} {
		if n != 0 && (n < 64 || n > c.Frames || n&(n-1) != 0) {
			return fmt.Errorf("%s: %d: must be 0 (default) or a power of two from 64 to frames (%d)", key, n, c.Frames)
		}
	}
	if c.Table.Capacity < 1 || c.Table.Capacity > MaxCapacity {
		return fmt.Errorf("table.capacity: %d: must be 1..%d", c.Table.Capacity, MaxCapacity)
	}
	if c.Table.Templates < 1 || c.Table.Templates > MaxTemplates {
		return fmt.Errorf("table.templates: %d: must be 1..%d", c.Table.Templates, MaxTemplates)
	}
	for key, d := range map[string]time.Duration{"timeouts.tcp": c.Timeouts.TCP, "timeouts.tcpfin": c.Timeouts.TCPFin, "timeouts.udp": c.Timeouts.UDP} {
		if d < 0 || (d > 0 && d < time.Second) {
			return fmt.Errorf("%s: %s: must be 0 (default) or at least 1s", key, d)
		}
	}
	if c.IPVS.ConnReuseMode < 0 || c.IPVS.ConnReuseMode > 3 {
		return fmt.Errorf("ipvs.conn_reuse_mode: %d: must be 0..3 (0 off, 1 reschedule a SYN on TIME_WAIT/CLOSE, 2 or 3 also on FIN_WAIT)", c.IPVS.ConnReuseMode)
	}
	for key, v := range map[string]int{"ipvs.expire_nodest_conn": c.IPVS.ExpireNodestConn, "ipvs.expire_quiescent_template": c.IPVS.ExpireQuiescentTemplate, "ipvs.sloppy_tcp": c.IPVS.SloppyTCP} {
		if v != 0 && v != 1 {
			return fmt.Errorf("%s: %d: must be 0 or 1", key, v)
		}
	}
	if err := c.IPVSDefense().Validate(); err != nil {
		return fmt.Errorf("ipvs.%w", err)
	}
	if err := c.SYNLimits().Validate(); err != nil {
		return err
	}
	if _, err := c.SYNServiceRates(); err != nil {
		return err
	}
	if _, err := c.SYNProxyServices(); err != nil {
		return err
	}
	if c.Defense.BlockFor < 0 || c.Defense.BlockFor > 24*time.Hour {
		return fmt.Errorf("defense.block_for: %s: must be 0 (never block) to 24h", c.Defense.BlockFor)
	}
	if c.Defense.BlockPrefix6 < 0 || c.Defense.BlockPrefix6 > 128 {
		return fmt.Errorf("defense.block_prefix6: %d: must be 1 to 128 (the prefix length an IPv6 source is blocked by; 0: 64)", c.Defense.BlockPrefix6)
	}
	if t := c.IPVS.SyncThreshold; len(t) != 0 && (len(t) != 2 || t[0] < 0 || t[1] < 0 || (t[1] > 0 && t[0] >= t[1]) || t[0] > conntrack.MaxSyncPkts || t[1] > conntrack.MaxSyncPkts) {
		return fmt.Errorf("ipvs.sync_threshold: %v: must be [threshold, period] with 0 <= threshold < period, or period 0, each at most %d (the packet count a connection's sync word holds)", t, conntrack.MaxSyncPkts)
	}
	if d := c.IPVS.SyncRefreshPeriod; d < 0 || d > conntrack.MaxTimeout {
		return fmt.Errorf("ipvs.sync_refresh_period: %s: must be 0 (off) to %s", d, conntrack.MaxTimeout)
	}
	if c.IPVS.SyncRetries < 0 || c.IPVS.SyncRetries > 3 {
		return fmt.Errorf("ipvs.sync_retries: %d: must be 0..3", c.IPVS.SyncRetries)
	}
	if v := c.IPVS.SyncPersistMode; v != 0 && v != 1 {
		return fmt.Errorf("ipvs.sync_persist_mode: %d: must be 0 or 1", v)
	}
	if err := c.Sync.Master.validate("sync.master"); err != nil {
		return err
	}
	if err := c.Sync.Backup.validate("sync.backup"); err != nil {
		return err
	}
	if d := c.Sync.FlushInterval; d < 0 || d > time.Minute {
		return fmt.Errorf("sync.flush_interval: %s: must be 0 (2s) to 1m", d)
	}
	if c.ICMP.Rate < 1 || c.ICMP.Rate > MaxICMPRate {
		return fmt.Errorf("icmp.rate: %d: must be 1..%d messages a second", c.ICMP.Rate, MaxICMPRate)
	}
	if c.ICMP.Burst < 1 || c.ICMP.Burst > MaxICMPRate {
		return fmt.Errorf("icmp.burst: %d: must be 1..%d", c.ICMP.Burst, MaxICMPRate)
	}
	if c.ICMP.HostInterval < 0 || c.ICMP.HostInterval > time.Hour {
		return fmt.Errorf("icmp.host_interval: %s: must be 0 (off) to 1h", c.ICMP.HostInterval)
	}
	if c.ICMP.HostBurst < 1 || c.ICMP.HostBurst > MaxICMPRate {
		return fmt.Errorf("icmp.host_burst: %d: must be 1..%d", c.ICMP.HostBurst, MaxICMPRate)
	}
	switch c.Poll.Mode {
	case "adaptive", "busy", "sleep":
	default:
		return fmt.Errorf("poll.mode: %q: must be adaptive (busy-poll, then sleep after poll.spin without frames), busy (never sleep) or sleep", c.Poll.Mode)
	}
	if c.Poll.Spin < 0 || c.Poll.Spin > MaxPollSpin {
		return fmt.Errorf("poll.spin: %s: must be from 0 to %s", c.Poll.Spin, MaxPollSpin)
	}
	if c.Health.Interval < 0 {
		return fmt.Errorf("health.interval: %s: must not be negative", c.Health.Interval)
	}
	if c.Health.Interval > 0 {
		if c.Health.Timeout <= 0 || c.Health.Timeout > c.Health.Interval {
			return fmt.Errorf("health.timeout: %s: must be positive and at most health.interval (%s)", c.Health.Timeout, c.Health.Interval)
		}
		if c.Health.Rise < 1 || c.Health.Fall < 1 {
			return fmt.Errorf("health.rise/fall: %d/%d: must be at least 1", c.Health.Rise, c.Health.Fall)
		}
		if err := checkOptions("health", c.Health.Type, c.Health.Digest, c.Health.VirtualHost, c.Health.DNSType, c.Health.DNSName, c.Health.HELOName); err != nil {
			return err
		}
		switch c.Health.Type {
		case "tcp", "dns", "smtp":
		case "http", "https":
			if !strings.HasPrefix(c.Health.Path, "/") {
				return fmt.Errorf("health.path: %q: must start with /", c.Health.Path)
			}
			if c.Health.Status < 100 || c.Health.Status > 599 {
				return fmt.Errorf("health.status: %d: must be an HTTP status 100..599", c.Health.Status)
			}
		case "exec":
			if len(c.Health.Command) == 0 || !strings.HasPrefix(c.Health.Command[0], "/") {
				return fmt.Errorf("health.command: %q: health.type exec needs a program given by its absolute path, then its arguments", c.Health.Command)
			}
		default:
			return fmt.Errorf("health.type: %q: must be tcp, http, https, dns, smtp or exec", c.Health.Type)
		}
		switch c.Health.OnFailure {
		case "", "quiesce", "remove": // "" is the zero value: quiesce
		default:
			return fmt.Errorf("health.on_failure: %q: must be quiesce (weight 0) or remove (out of the service until it recovers)", c.Health.OnFailure)
		}
	}
	for i, sc := range c.Services {
		if sc.Health != nil {
			if err := sc.Health.validate(fmt.Sprintf("services[%d].health", i), &c.Health); err != nil {
				return err
			}
		}
		if sc.Sorry != nil && c.Health.Interval <= 0 {
			return fmt.Errorf("services[%d].sorry: a sorry server needs health checks on (health.interval above 0)", i)
		}
	}
	if _, err := c.SorryServers(); err != nil {
		return err
	}
	if c.Metrics.Address != "" {
		if _, err := netip.ParseAddrPort(c.Metrics.Address); err != nil {
			return fmt.Errorf("metrics.address: %q: must be ip:port (or empty to disable): %v", c.Metrics.Address, err)
		}
	}
	if c.Control.Socket != "" && !strings.HasPrefix(c.Control.Socket, "/") {
		return fmt.Errorf("control.socket: %q: must be an absolute path", c.Control.Socket)
	}
	if n := len(c.Control.Socket); n > MaxSocketPath {
		return fmt.Errorf("control.socket: %q: %d bytes: a unix socket path holds at most %d (sun_path is %d bytes with its terminating NUL)", c.Control.Socket, n, MaxSocketPath, MaxSocketPath+1)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q: must be debug, info, warn or error", c.Log.Level)
	}
	return nil
}

// VS converts the services and mark groups into the shared model, validating
// each key on the way.
func (c *Config) VS() (*vs.Table, error) {
	if err := c.checkSizes(); err != nil {
		return nil, err
	}
	t := &vs.Table{}
	for i, m := range c.Marks {
		p := fmt.Sprintf("marks[%d]", i)
		if m.Mark < 1 || m.Mark > 1<<32-1 {
			return nil, fmt.Errorf("%s.mark: %d: must be 1..4294967295", p, m.Mark)
		}
		g := vs.Mark{Mark: uint32(m.Mark), Name: m.Name}
		keys := 0
		for j, x := range m.Matches {
			q := fmt.Sprintf("%s.matches[%d]", p, j)
			proto, err := vs.ParseProto(x.Proto)
			if err != nil {
				return nil, fmt.Errorf("%s.proto: %w", q, err)
			}
			addr, err := parseAddr(x.Address)
			if err != nil {
				return nil, fmt.Errorf("%s.address: %w", q, err)
			}
			lo, hi, err := parsePorts(x.Ports)
			if err != nil {
				return nil, fmt.Errorf("%s.ports: %w", q, err)
			}
			g.Matches = append(g.Matches, vs.Match{Proto: proto, Addr: addr, PortLo: lo, PortHi: hi})
			if lo == 0 {
				keys++ // port 0: one key for every port
			} else {
				keys += int(hi-lo) + 1
			}
		}
		if keys > vs.MaxMarkKeys {
			return nil, fmt.Errorf("%s.matches: the port ranges expand to %d (address, protocol, port) keys: more than %d", p, keys, vs.MaxMarkKeys)
		}
		t.Marks = append(t.Marks, g)
	}
	// Service keys are found through a map (a firewall-mark service's key
	// is its mark alone, as vs.Table.Find compares them), so many services
	// are checked in linear time.
	index := make(map[vs.Key]int, len(c.Services))
	for i, sc := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		s, err := sc.service(p)
		if err != nil {
			return nil, err
		}
		if s.FWMark != 0 {
			if _, ok := t.MarkGroup(s.FWMark); !ok {
				return nil, fmt.Errorf("%s.fwmark: %d: no entry under marks defines this mark", p, s.FWMark)
			}
		}
		// Checked here rather than left to Table.Validate so the error
		// names both entries by their key paths.
		k := s.Key
		if k.FWMark != 0 {
			k = vs.Key{FWMark: k.FWMark, IPv6: k.IPv6}
		}
		if j, dup := index[k]; dup {
			return nil, fmt.Errorf("%s: service %s: %w (services[%d] has the same key)", p, s.Key, vs.ErrServiceExists, j)
		}
		index[k] = i
		t.Services = append(t.Services, s)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return t, nil
}

// checkSizes refuses a configuration larger than the director can put in
// force, naming the key, before anything is converted.
func (c *Config) checkSizes() error {
	if n := len(c.Services); n > vs.MaxServices {
		return fmt.Errorf("services: %d services: more than %d, the most afvs serves", n, vs.MaxServices)
	}
	if n := len(c.Marks); n > vs.MaxServices {
		return fmt.Errorf("marks: %d firewall-mark groups: more than %d, one for each service afvs can serve", n, vs.MaxServices)
	}
	dests := 0
	for _, sc := range c.Services {
		dests += len(sc.Reals)
		if sc.Sorry != nil {
			dests++
		}
	}
	if dests > vs.MaxDests {
		return fmt.Errorf("services: %d real servers in all (sorry servers included): more than %d, the most afvs serves", dests, vs.MaxDests)
	}
	return nil
}

// real converts one real server's config; q is its key path, fwd the
// service's default forwarding method and port the service's port.
func (rc *RealConfig) real(q string, fwd vs.Fwd, port uint16) (vs.Real, error) {
	r := vs.Real{Fwd: fwd, Weight: 1}
	var err error
	if r.Addr, err = parseAddr(rc.Address); err != nil {
		return r, fmt.Errorf("%s.address: %w", q, err)
	}
	if rc.Port < 0 || rc.Port > 65535 {
		return r, fmt.Errorf("%s.port: %d: must be 0..65535", q, rc.Port)
	}
	r.Port = uint16(rc.Port)
	if r.Port == 0 {
		r.Port = port
	}
	if rc.Weight != nil {
		if *rc.Weight < 0 || *rc.Weight > vs.MaxWeight {
			return r, fmt.Errorf("%s.weight: %d: must be 0..%d", q, *rc.Weight, vs.MaxWeight)
		}
		r.Weight = int32(*rc.Weight)
	}
	if rc.Forward != "" {
		if r.Fwd, err = vs.ParseFwd(rc.Forward); err != nil {
			return r, fmt.Errorf("%s.forward: %w", q, err)
		}
	}
	if rc.Upper < 0 || rc.Lower < 0 {
		return r, fmt.Errorf("%s: thresholds upper=%d lower=%d: must not be negative", q, rc.Upper, rc.Lower)
	}
	r.Upper, r.Lower = uint32(rc.Upper), uint32(rc.Lower)
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("%s: %w", q, err)
	}
	return r, nil
}

func (sc *ServiceConfig) service(p string) (vs.Service, error) {
	var s vs.Service
	if sc.FWMark != 0 {
		if sc.FWMark < 0 || sc.FWMark > 1<<32-1 {
			return s, fmt.Errorf("%s.fwmark: %d: must be 1..4294967295", p, sc.FWMark)
		}
		if sc.Address != "" || sc.Port != 0 {
			return s, fmt.Errorf("%s: a fwmark service takes its addresses from marks; address and port must be empty", p)
		}
		s.FWMark = uint32(sc.FWMark)
		s.IPv6 = sc.IPv6
		if sc.Proto != "" {
			proto, err := vs.ParseProto(sc.Proto)
			if err != nil {
				return s, fmt.Errorf("%s.proto: %w", p, err)
			}
			s.Proto = proto
		}
	} else {
		proto, err := vs.ParseProto(sc.Proto)
		if err != nil {
			return s, fmt.Errorf("%s.proto: %w", p, err)
		}
		s.Proto = proto
		if sc.IPv6 {
			return s, fmt.Errorf("%s.ipv6: only a fwmark service takes it; an address service's family is its address's", p)
		}
		if s.Addr, err = parseAddr(sc.Address); err != nil {
			return s, fmt.Errorf("%s.address: %w", p, err)
		}
		if sc.Port < 0 || sc.Port > 65535 {
			return s, fmt.Errorf("%s.port: %d: must be 0..65535", p, sc.Port)
		}
		s.Port = uint16(sc.Port)
	}
	s.Sched = sc.Scheduler
	if s.Sched == "" {
		s.Sched = "wlc"
	}
	if vs.CheckSched(s.Sched) != nil {
		return s, fmt.Errorf("%s.scheduler: %q: must be one of %s", p, sc.Scheduler, strings.Join(vs.SchedNames(), ", "))
	}
	s.SchedFlags = sc.SchedFlags
	if len(sc.SchedFlags) > 0 {
		if _, err := sched.ParseFlags(s.Sched, strings.Join(sc.SchedFlags, ",")); err != nil {
			return s, fmt.Errorf("%s.sched_flags: %w", p, err)
		}
	}
	if sc.Persistent < 0 || sc.Persistent > 1<<31 {
		return s, fmt.Errorf("%s.persistent: %d: must be 0 (off) or a timeout in seconds", p, sc.Persistent)
	}
	if sc.Persistent > 0 {
		s.Persistent = true
		s.Timeout = uint32(sc.Persistent)
	}
	if sc.Netmask != "" && s.Is6() {
		// ipvsadm's -M for an IPv6 service: a prefix length 1..128.
		bits, err := strconv.Atoi(strings.TrimPrefix(sc.Netmask, "/"))
		if err != nil || bits < 1 || bits > 128 {
			return s, fmt.Errorf("%s.netmask: %q: an IPv6 service's netmask is a prefix length 1..128, such as 64", p, sc.Netmask)
		}
		s.Netmask = vs.PrefixMask(bits, true)
	} else if sc.Netmask != "" {
		m, err := netip.ParseAddr(sc.Netmask)
		if err != nil || !m.Is4() {
			return s, fmt.Errorf("%s.netmask: %q: must be an IPv4 netmask such as 255.255.255.0", p, sc.Netmask)
		}
		if _, err := vs.MaskBits(m); err != nil {
			return s, fmt.Errorf("%s.netmask: %w", p, err)
		}
		s.Netmask = m
	}
	if sc.OPS && s.FWMark == 0 && s.Proto != vs.UDP {
		return s, fmt.Errorf("%s.ops: one-packet scheduling is only for UDP virtual services (or a fwmark service, whose UDP datagrams it applies to); this one is %s", p, s.Proto)
	}
	s.OnePacket = sc.OPS
	defFwd, err := vs.ParseFwd(sc.Forward)
	if err != nil {
		return s, fmt.Errorf("%s.forward: %w", p, err)
	}
	if len(sc.Reals) > vs.MaxDests {
		return s, fmt.Errorf("%s.reals: %d real servers: more than %d, the most afvs serves", p, len(sc.Reals), vs.MaxDests)
	}
	// Duplicates are found through a map, so a service with many real
	// servers is checked in linear time.
	index := make(map[netip.AddrPort]int, len(sc.Reals))
	s.Reals = make([]vs.Real, 0, len(sc.Reals))
	for j, rc := range sc.Reals {
		q := fmt.Sprintf("%s.reals[%d]", p, j)
		r, err := rc.real(q, defFwd, s.Port)
		if err != nil {
			return s, err
		}
		// ipvsadm sets a -g or -i server's port to the service's: the
		// packet reaches it unchanged. Only NAT rewrites the port.
		if s.FWMark == 0 && r.Fwd != vs.Masq && r.Port != s.Port {
			return s, fmt.Errorf("%s.port: %d: only a nat real server's port may differ from the service's (%d); dr and tun deliver the packet unchanged", q, r.Port, s.Port)
		}
		if k, dup := index[r.AddrPort()]; dup {
			return s, fmt.Errorf("%s: real server %s: %w (%s.reals[%d] has the same address and port)", q, r.AddrPort(), vs.ErrDestExists, p, k)
		}
		index[r.AddrPort()] = j
		s.Reals = append(s.Reals, r)
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", p, err)
	}
	return s, nil
}

// parseAddr reads an IPv4 or IPv6 address, refusing the IPv4-mapped form
// and zones, which name no service or real server.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q: not an IP address", s)
	}
	if a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: must be a plain IPv4 or IPv6 address (no IPv4-mapped form, no zone)", s)
	}
	return a, nil
}

func parsePorts(s string) (lo, hi uint16, err error) {
	if s == "" {
		return 0, 0, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return 0, 0, fmt.Errorf("%q: must be a port (1-65535) or a range lo-hi", s)
	}
	return uint16(l), uint16(h), nil
}

// checkNATLayout refuses VS/NAT real servers when the connection table
// has no VS/NAT reply index (table.nat: false). Any number of receiving
// interfaces carries VS/NAT: one facing both the clients and the real
// servers, or the LVS manual's layout with one facing the clients and
// another the real servers (their replies arrive there and leave on the
// clients' side).
func (c *Config) checkNATLayout(t *vs.Table) error {
	for i, s := range t.Services {
		for _, r := range s.Reals {
			if r.Fwd == vs.Masq && !c.Table.NAT {
				return fmt.Errorf("services[%d] (%s): real server %s: forward nat needs table.nat: true (the VS/NAT reply index)", i, s.Key, r.AddrPort())
			}
		}
	}
	return nil
}
