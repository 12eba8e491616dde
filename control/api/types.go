package api

// Status is GET /v1/status: the director's counters.
type Status struct {
	Version    string         `json:"version"`
	Uptime     float64        `json:"uptime_seconds"`
	Workers    []WorkerStatus `json:"workers"`
	RX         uint64         `json:"rx_packets"`
	TX         uint64         `json:"tx_packets"`
	RXBytes    uint64         `json:"rx_bytes"`
	TXBytes    uint64         `json:"tx_bytes"`
	ICMPSent   uint64         `json:"icmp_sent"`
	Fragmented uint64         `json:"fragmented"` // VS/TUN packets sent as two inner fragments
	// ICMPForwarded: ICMP errors passed to the real server of the
	// connection they quote.
	ICMPForwarded uint64            `json:"icmp_forwarded"`
	Drops         map[string]uint64 `json:"drops"`
	// SYNDrops are the TCP SYNs among the drops of packets that would
	// have opened a connection, by reason; reasons with none are left out.
	SYNDrops map[string]uint64 `json:"syn_drops,omitempty"`
	Steering map[string]uint64 `json:"steering"`
	Table    TableStatus       `json:"conntrack"`
	Local    LocalStatus       `json:"local"`
	Defense  *DefenseStatus    `json:"defense,omitempty"`
	SYNProxy SYNProxyStatus    `json:"syn_proxy"`
	Sync     SyncStatus        `json:"sync"`
}

// LocalStatus counts the workers' local-node work: packets they handed
// to the director's own stack, connections the steering program was told
// to pass, and connections its flow map had no room for.
type LocalStatus struct {
	Delivered uint64 `json:"delivered"`
	Flows     uint64 `json:"flows"`
	Full      uint64 `json:"map_full"`
}

// DefenseStatus is the flood defence as it stands: IPVS's three
// strategies with their values as the kernel would show them now (1 or 2
// in the automatic modes: 2 while on), what acts, and the table fill that
// decided it; and the SYN rate limits in force.
type DefenseStatus struct {
	DropEntry      int    `json:"drop_entry"`
	DropPacket     int    `json:"drop_packet"`
	SecureTCP      int    `json:"secure_tcp"`
	DropEntryOn    bool   `json:"drop_entry_on"`
	DropRate       int    `json:"drop_rate"` // drop_packet drops one new connection in this many; 0: none
	SecureTCPOn    bool   `json:"secure_tcp_on"`
	FreeEntries    uint64 `json:"free_entries"`
	AmemThresh     int    `json:"amemthresh"`
	EntriesDropped uint64 `json:"entries_dropped"` // by drop_entry
	SYNRateSource  int    `json:"syn_rate_per_source"`
	SYNRateService int    `json:"syn_rate_per_service"`
	SYNBurst       int    `json:"syn_burst"`
}

// SyncStatus is the connection-sync daemon: what runs and its counters.
type SyncStatus struct {
	Daemons       []SyncDaemon      `json:"daemons"`
	SentMessages  uint64            `json:"sent_messages"`
	SentEntries   uint64            `json:"sent_entries"`
	SendErrors    uint64            `json:"send_errors"`
	QueueFull     uint64            `json:"queue_full"` // records the workers dropped: their sync queue was full
	RecvMessages  uint64            `json:"received_messages"`
	RecvEntries   uint64            `json:"received_entries"`
	Installed     uint64            `json:"installed"` // entries a backup made
	Updated       uint64            `json:"updated"`   // entries a backup refreshed
	ReceiveErrors uint64            `json:"receive_errors"`
	Drops         map[string]uint64 `json:"drops"` // messages and entries dropped, by reason
}

// SyncDaemon is one running sync daemon with the values it runs with.
type SyncDaemon struct {
	State     string `json:"state"` // master or backup
	Interface string `json:"mcast_interface"`
	SyncID    uint8  `json:"syncid"`
	MaxLen    uint16 `json:"sync_maxlen"`
	Group     string `json:"mcast_group"`
	Port      uint16 `json:"mcast_port"`
	TTL       uint8  `json:"mcast_ttl"`
}

// WorkerStatus is one worker's view.
type WorkerStatus struct {
	Dev   string `json:"dev"`
	Queue int    `json:"queue"`
	CPU   int    `json:"cpu"`
	RX    uint64 `json:"rx_packets"`
	TX    uint64 `json:"tx_packets"`
	// AF_XDP ring events of the worker's socket (zero on fakes).
	FillEmpty       uint64 `json:"fill_ring_empty"`
	TxRingFull      uint64 `json:"tx_ring_full"`
	KickErrors      uint64 `json:"kick_errors"`
	RxDropped       uint64 `json:"kernel_rx_dropped"`
	RxRingFull      uint64 `json:"kernel_rx_ring_full"`
	RxFillRingEmpty uint64 `json:"kernel_rx_fill_ring_empty"`
	// RxBatches is the socket's receives that returned frames: RX over
	// it is the worker's mean batch.
	RxBatches uint64 `json:"rx_batches"`
	// Poll is the worker's poll mode ("adaptive spin=50µs", "busy",
	// "sleep"), BusyPoll the busy-poll socket options the kernel accepted
	// ("prefer,usecs=20,budget=64", "off"; empty on fakes), and PollSleeps
	// how many times the worker slept in poll(2).
	Poll       string `json:"poll"`
	BusyPoll   string `json:"busy_poll,omitempty"`
	PollSleeps uint64 `json:"poll_sleeps"`
}

// TableStatus is the connection table's occupancy.
type TableStatus struct {
	Entries   uint64 `json:"entries"`
	Templates uint64 `json:"templates"`
	Capacity  uint64 `json:"capacity"`
	Inserted  uint64 `json:"inserted"`
	Expired   uint64 `json:"expired"`
	Evicted   uint64 `json:"evicted"`
	Refused   uint64 `json:"refused"`
	Bytes     uint64 `json:"bytes"` // memory the table holds, all of it allocated at start
}

// Traffic mirrors IPVS's per-service and per-server counters.
type Traffic struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"in_packets"`
	OutPkts  uint64 `json:"out_packets"`
	InBytes  uint64 `json:"in_bytes"`
	OutBytes uint64 `json:"out_bytes"`
}

// Rate is the estimated per-second rates, as IPVS's estimator.
type Rate struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"in_pps"`
	OutPPS uint64 `json:"out_pps"`
	InBPS  uint64 `json:"in_bps"`
	OutBPS uint64 `json:"out_bps"`
}

// Service is one virtual service in GET /v1/services.
type Service struct {
	Proto      string   `json:"proto"` // tcp, udp, or fwm
	Address    string   `json:"address,omitempty"`
	Port       uint16   `json:"port"`
	FWMark     uint32   `json:"fwmark,omitempty"`
	IPv6       bool     `json:"ipv6,omitempty"` // a firewall-mark service of the IPv6 family
	Scheduler  string   `json:"scheduler"`
	SchedFlags []string `json:"sched_flags,omitempty"`
	Persistent bool     `json:"persistent"`
	Timeout    uint32   `json:"timeout,omitempty"`
	Netmask    string   `json:"netmask,omitempty"`
	OnePacket  bool     `json:"ops,omitempty"` // one-packet scheduling (ipvsadm -o)
	Stats      Traffic  `json:"stats"`
	Rate       Rate     `json:"rate"`
	Reals      []Real   `json:"reals"`
}

// Real is one real server in GET /v1/services.
type Real struct {
	Address      string `json:"address"`
	Port         uint16 `json:"port"`
	Forward      string `json:"forward"` // Route, Tunnel, Masq
	Weight       int32  `json:"weight"`
	Upper        uint32 `json:"upper_threshold"`
	Lower        uint32 `json:"lower_threshold"`
	Active       int32  `json:"active_conns"`
	Inactive     int32  `json:"inactive_conns"`
	PersistConns int32  `json:"persist_conns"`
	Overloaded   bool   `json:"overloaded"`
	Resolved     bool   `json:"neighbor_resolved"`
	// Reachable is false while the director cannot send to the real server
	// (no route, or no MAC for the next hop); Status then says why.
	Reachable bool    `json:"reachable"`
	Status    string  `json:"status"`
	Up        bool    `json:"up"` // health check passes (or checks are off)
	Stats     Traffic `json:"stats"`
	Rate      Rate    `json:"rate"`
}

// CommandsRequest is POST /v1/commands: ipvsadm command lines (without
// the program name), applied together or not at all.
type CommandsRequest struct {
	Commands [][]string `json:"commands"`
}

// MaxCommandsBytes bounds the body of a POST /v1/commands (afvsadm -R
// sends a whole table as one batch); the largest table afvs serves takes
// a small fraction of it.
const MaxCommandsBytes = 8 << 20

// Conn is one entry of GET /v1/conns, as ipvsadm -Lc shows it.
type Conn struct {
	Proto    string  `json:"proto"`
	Client   string  `json:"client"`
	Virtual  string  `json:"virtual"`
	Dest     string  `json:"dest"`
	State    string  `json:"state"`
	Expires  float64 `json:"expires_seconds"`
	Template bool    `json:"template"`
}

// Timeouts is GET/PUT /v1/timeouts, in seconds.
type Timeouts struct {
	TCP    uint32 `json:"tcp"`
	TCPFin uint32 `json:"tcpfin"`
	UDP    uint32 `json:"udp"`
}

// ErrorBody is every error reply: a 4xx status with {"error": "..."}.
type ErrorBody struct {
	Error string `json:"error"`
}

// Version is the daemon's version, reported by /v1/status, in metrics and
// by afvsadm --version; set at build time with
// -ldflags "-X github.com/afvs/afvs/control/api.Version=...".
var Version = "0.1.0"

// SYNProxyStatus counts the SYN proxy's work: SYN-ACKs with a cookie
// sent, valid cookies (connections made, SYNs sent to real servers),
// real servers' SYN-ACKs answered, client segments held meanwhile, SYNs
// sent again on a client's retransmission, and
// held segments given up for a newer connection's.
type SYNProxyStatus struct {
	Cookies      uint64 `json:"cookies"`
	Opened       uint64 `json:"opened"`
	Established  uint64 `json:"established"`
	Held         uint64 `json:"held"`
	Resent       uint64 `json:"resent"`
	HoldReplaced uint64 `json:"hold_replaced"`
}
