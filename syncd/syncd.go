// Package syncd is the connection-sync daemon: IPVS's sync master and
// backup threads (net/netfilter/ipvs/ip_vs_sync.c) for afvs, speaking the
// kernel's protocol version 1 (package ipvssync) over UDP multicast.
//
// A master drains the workers' sync queues (each worker pushes a Record
// when ipvssync.Needed says a connection is due, without locking or
// allocating) every SendDelay, and at once when a worker's queue has taken
// WakeupRate messages' worth since it last woke the master (as the
// kernel's sb_queue_tail wakes its master thread), packs the records into
// messages of at most the maximum length the kernel derives from
// sync_maxlen and the MTU, and
// sends each full message as one datagram at once; a partly filled
// message goes out once its first entry has waited FlushAfter, as the
// kernel's master thread flushes its current buffer after
// IPVS_SYNC_FLUSH_TIME. A backup reads datagrams, decodes them (a
// malformed message or entry is dropped and counted by reason) and
// installs each entry through its Host: state, timeout, templates, the
// real server looked up by address and port. Master and backup may run
// at once, as in the kernel.
//
// The sockets (socket_linux.go, the only OS code here) are of the
// group's family, IPv4 or IPv6, as the kernel's mcast_af; both are bound
// to the sync interface, and the backup's is bound to the group and port
// and joins the group on that interface only.
package syncd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/dataplane"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/ipvssync"
)

// Host is the dataplane side: *director.Director implements it.
type Host interface {
	// StartSync gives every worker a sync queue of capacity records and
	// makes it offer connections there under s; it returns the queues.
	StartSync(s ipvssync.Settings, capacity int) ([]*ipvssync.Queue, error)
	// SetSyncSettings changes the settings of the queues StartSync made.
	SetSyncSettings(s ipvssync.Settings)
	// StopSync makes the workers stop offering connections.
	StopSync()
	// InstallSynced installs one received entry (dataplane.InstallSynced
	// on the snapshot and table in force) with in_pkts set to threshold.
	InstallSynced(c *ipvssync.Conn, threshold int) (conntrack.SyncResult, dataplane.SyncDrop)
	// SyncSeq adds to an entry the master is about to send the sequence
	// adjustment of its connection, if it has one (a SYN-proxied VS/NAT
	// connection: dataplane.SyncedSeq). A worker's record has no room
	// for it; the master asks here, off the workers' path.
	SyncSeq(c *ipvssync.Conn)
}

// Errors with ipvsadm's texts for the kernel's EEXIST and ESRCH answers
// (libipvs's ipvs_strerror).
var (
	ErrRunning    = errors.New("Daemon has already run")
	ErrNotRunning = errors.New("No daemon is running")
)

// Kernel timing (ip_vs_sync.c): full messages wait at most SendDelay
// (IPVS_SYNC_SEND_DELAY, HZ/50); a partly filled one is flushed once it
// is FlushAfter old (IPVS_SYNC_FLUSH_TIME, 2 s).
const (
	SendDelay         = 20 * time.Millisecond
	DefaultFlushAfter = 2 * time.Second
)

// QueueCapacity is each worker's sync queue, in records.
const QueueCapacity = 8192

// WakeupRate is how many full messages' worth of records a worker queues
// before it wakes the master rather than leave them to the timer
// (IPVS_SYNC_WAKEUP_RATE, which sb_queue_tail counts in buffers).
const WakeupRate = 8

// wakeEvery is WakeupRate messages of maxLen bytes in records: IPv4
// entries without options, the most a message holds.
func wakeEvery(maxLen int) int {
	return WakeupRate * max(1, (maxLen-ipvssync.HeaderLen)/ipvssync.EntryV4Len)
}

// Options are the daemon-wide settings the config gives.
type Options struct {
	// Settings are the sync sysctls (when a connection is sent).
	Settings ipvssync.Settings
	// FlushAfter is how long a partly filled message waits; 0 means
	// DefaultFlushAfter.
	FlushAfter time.Duration
	Log        *slog.Logger

	sendDelay time.Duration // the master's timer; 0 means SendDelay (tests lengthen it)
}

// UnsentMixedFamily is the Stats.Drops reason of the connections and
// templates a master's workers did not offer, when due, because a sync
// entry cannot carry them: their real server's address family is not
// their client's (an IPv4 service's IPv6 tunnel dest or the reverse; see
// Queue.Skip).
const UnsentMixedFamily = "unsent_mixed_family"

// Stats are the daemon's counters, cumulative over every master and
// backup it has run.
type Stats struct {
	SentMessages  uint64            `json:"sent_messages"`
	SentEntries   uint64            `json:"sent_entries"`
	SendErrors    uint64            `json:"send_errors"`
	QueueFull     uint64            `json:"queue_full"` // records the workers dropped: queue full
	RecvMessages  uint64            `json:"received_messages"`
	RecvEntries   uint64            `json:"received_entries"`
	Installed     uint64            `json:"installed"` // entries made
	Updated       uint64            `json:"updated"`   // existing entries refreshed
	Drops         map[string]uint64 `json:"drops"`     // messages and entries dropped, by reason
	ReceiveErrors uint64            `json:"receive_errors"`
}

type counters struct {
	sentMsgs, sentEntries, sendErrs, queueFull atomic.Uint64
	unsentMixed                                atomic.Uint64
	recvMsgs, recvEntries, installed, updated  atomic.Uint64
	recvErrs                                   atomic.Uint64
	decode                                     [ipvssync.NumReasons]atomic.Uint64
	install                                    [dataplane.NumSyncDrops]atomic.Uint64
}

// Manager runs at most one master and one backup.
type Manager struct {
	host Host
	opt  Options
	log  *slog.Logger

	mu     sync.Mutex
	master *master
	backup *backup
	c      counters
}

// New returns a manager with nothing running.
func New(host Host, opt Options) *Manager {
	if opt.FlushAfter <= 0 {
		opt.FlushAfter = DefaultFlushAfter
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	return &Manager{host: host, opt: opt, log: opt.Log}
}

// SetOptions changes the sync sysctls, at once for a running master,
// and the flush time, which a master takes at its next start.
func (m *Manager) SetOptions(opt Options) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if opt.FlushAfter <= 0 {
		opt.FlushAfter = DefaultFlushAfter
	}
	if opt.Log == nil {
		opt.Log = m.log
	}
	m.opt = opt
	if m.master != nil {
		m.host.SetSyncSettings(opt.Settings)
	}
}

// Fill gives d the values the kernel runs a daemon with when they are not
// given (start_sync_thread): group 224.0.0.81, port 8848, TTL 1, and the
// maximum message length from sync_maxlen and the MTU less the IP and UDP
// headers of the group's family, 28 bytes for IPv4 and 48 for IPv6 (mtu is
// the interface's, which only a backup uses).
func Fill(d ipvsadm.Daemon, mtu int) ipvsadm.Daemon {
	if !d.McastGroup.IsValid() {
		d.McastGroup = ipvssync.DefaultGroup
	}
	if d.McastPort == 0 {
		d.McastPort = ipvssync.DefaultPort
	}
	if d.McastTTL == 0 {
		d.McastTTL = ipvssync.DefaultTTL
	}
	d.SyncMaxlen = uint16(ipvssync.MaxLen(d.State == ipvsadm.Backup, mtu, int(d.SyncMaxlen), d.McastGroup.Is6()))
	return d
}

// Check reports what Start would refuse in d without opening anything:
// the role, the group (ipvssync.CheckGroup: IPv4 or IPv6 multicast), and
// the interface.
func Check(d ipvsadm.Daemon) error {
	if d.State != ipvsadm.Master && d.State != ipvsadm.Backup {
		return fmt.Errorf("sync daemon state %d: must be master or backup", d.State)
	}
	if d.McastIfn == "" {
		return fmt.Errorf("%s sync daemon: mcast-interface is required", d.State)
	}
	if g := d.McastGroup; g.IsValid() {
		if err := ipvssync.CheckGroup(g); err != nil {
			return fmt.Errorf("%s sync daemon: mcast-group %s: %w", d.State, g, err)
		}
	}
	_, err := iface(d.McastIfn)
	return err
}

// Start starts a master or a backup as ipvsadm --start-daemon does. A
// role already running is ErrRunning; nothing changes on any error.
func (m *Manager) Start(d ipvsadm.Daemon) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if (d.State == ipvsadm.Master && m.master != nil) || (d.State == ipvsadm.Backup && m.backup != nil) {
		return ErrRunning
	}
	if err := Check(d); err != nil {
		return err
	}
	ifc, err := iface(d.McastIfn)
	if err != nil {
		return err
	}
	d = Fill(d, ifc.MTU)
	if d.State == ipvsadm.Master {
		return m.startMaster(d, ifc)
	}
	return m.startBackup(d, ifc)
}

// Stop stops the daemon of role state as ipvsadm --stop-daemon does;
// ErrNotRunning if none runs.
func (m *Manager) Stop(state ipvsadm.DaemonState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch state {
	case ipvsadm.Master:
		if m.master == nil {
			return ErrNotRunning
		}
		m.master.stop()
		m.host.StopSync()
		m.master = nil
	case ipvsadm.Backup:
		if m.backup == nil {
			return ErrNotRunning
		}
		m.backup.stop()
		m.backup = nil
	default:
		return fmt.Errorf("sync daemon state %d: must be master or backup", state)
	}
	m.log.Info("sync daemon stopped", "state", state.String())
	return nil
}

// Close stops whatever runs.
func (m *Manager) Close() {
	for _, s := range []ipvsadm.DaemonState{ipvsadm.Master, ipvsadm.Backup} {
		_ = m.Stop(s)
	}
}

// Daemons lists the running daemons with the values they run with, as
// the kernel reports them to ipvsadm -L --daemon.
func (m *Manager) Daemons() []ipvsadm.Daemon {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ipvsadm.Daemon
	if m.master != nil {
		out = append(out, m.master.cfg)
	}
	if m.backup != nil {
		out = append(out, m.backup.cfg)
	}
	return out
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	c := &m.c
	s := Stats{
		SentMessages: c.sentMsgs.Load(), SentEntries: c.sentEntries.Load(), SendErrors: c.sendErrs.Load(),
		RecvMessages: c.recvMsgs.Load(), RecvEntries: c.recvEntries.Load(),
		Installed: c.installed.Load(), Updated: c.updated.Load(), ReceiveErrors: c.recvErrs.Load(),
		Drops: map[string]uint64{},
	}
	s.QueueFull = c.queueFull.Load()
	unsent := c.unsentMixed.Load()
	m.mu.Lock()
	if m.master != nil {
		for _, q := range m.master.queues {
			s.QueueFull += q.Dropped()
			unsent += q.Skipped()
		}
	}
	m.mu.Unlock()
	s.Drops[UnsentMixedFamily] = unsent
	for r := ipvssync.Reason(1); r < ipvssync.NumReasons; r++ {
		s.Drops[r.String()] = c.decode[r].Load()
	}
	for r := dataplane.SyncDrop(1); r < dataplane.NumSyncDrops; r++ {
		s.Drops[r.String()] = c.install[r].Load()
	}
	return s
}

// master is a running sync master.
type master struct {
	cfg    ipvsadm.Daemon
	conn   *net.UDPConn
	dst    netip.AddrPort // the group and port every message goes to
	queues []*ipvssync.Queue
	wake   chan struct{} // a worker's queue holds WakeupRate messages' worth
	done   chan struct{}
	exited chan struct{}
}

func (m *Manager) startMaster(d ipvsadm.Daemon, ifc *net.Interface) error {
	conn, err := openSender(ifc, d.McastGroup, d.McastPort, d.McastTTL)
	if err != nil {
		return err
	}
	qs, err := m.host.StartSync(m.opt.Settings, QueueCapacity)
	if err != nil {
		_ = conn.Close()
		return err
	}
	ms := &master{cfg: d, conn: conn, dst: netip.AddrPortFrom(d.McastGroup, d.McastPort), queues: qs, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	for _, q := range qs {
		q.SetWake(ms.wake, wakeEvery(int(d.SyncMaxlen)))
	}
	m.master = ms
	go m.runMaster(ms, int(d.SyncMaxlen), m.opt.FlushAfter)
	m.log.Info("sync daemon started", "state", "master", "interface", d.McastIfn, "syncid", d.SyncID,
		"maxlen", d.SyncMaxlen, "group", d.McastGroup.String(), "port", d.McastPort, "ttl", d.McastTTL)
	return nil
}

func (ms *master) stop() {
	close(ms.done)
	<-ms.exited
	_ = ms.conn.Close()
}

// runMaster is sync_thread_master: drain, pack, send.
func (m *Manager) runMaster(ms *master, maxLen int, flushAfter time.Duration) {
	defer close(ms.exited)
	buf := make([]byte, max(maxLen, ipvssync.HeaderLen+ipvssync.MaxEntryLen))
	enc, err := ipvssync.NewEncoder(buf, maxLen, ms.cfg.SyncID)
	if err != nil {
		m.log.Error("sync master", "err", err)
		return
	}
	var rec ipvssync.Record
	var c ipvssync.Conn
	var since time.Time // when the message's first entry was packed
	send := func() {
		if _, err := ms.conn.WriteToUDPAddrPort(enc.Bytes(), ms.dst); err != nil {
			m.c.sendErrs.Add(1)
		} else {
			m.c.sentMsgs.Add(1)
			m.c.sentEntries.Add(uint64(enc.Count()))
		}
		enc.Reset()
	}
	delay := m.opt.sendDelay
	if delay == 0 {
		delay = SendDelay
	}
	tick := time.NewTicker(delay)
	defer tick.Stop()
	for {
		select {
		case <-ms.done:
			// The records drained so far go out; what the workers
			// still hold is dropped with the queues.
			if enc.Count() > 0 {
				send()
			}
			for _, q := range ms.queues {
				m.c.queueFull.Add(q.Dropped())
				m.c.unsentMixed.Add(q.Skipped())
			}
			return
		case <-tick.C:
		case <-ms.wake:
		}
		for _, q := range ms.queues {
			for q.Pop(&rec) {
				rec.Conn(&c)
				m.host.SyncSeq(&c)
				if enc.Count() == 0 {
					since = time.Now()
				}
				err := enc.Append(&c)
				if errors.Is(err, ipvssync.ErrFull) {
					send()
					since = time.Now()
					err = enc.Append(&c)
				}
				if err != nil {
					m.c.sendErrs.Add(1)
				}
			}
		}
		if enc.Count() > 0 && time.Since(since) >= flushAfter {
			send()
		}
	}
}

// backup is a running sync backup.
type backup struct {
	cfg    ipvsadm.Daemon
	conn   *net.UDPConn
	exited chan struct{}
}

func (m *Manager) startBackup(d ipvsadm.Daemon, ifc *net.Interface) error {
	conn, err := openReceiver(ifc, d.McastGroup, d.McastPort)
	if err != nil {
		return err
	}
	b := &backup{cfg: d, conn: conn, exited: make(chan struct{})}
	m.backup = b
	go m.runBackup(b, m.opt.Settings.Threshold)
	m.log.Info("sync daemon started", "state", "backup", "interface", d.McastIfn, "syncid", d.SyncID,
		"maxlen", d.SyncMaxlen, "group", d.McastGroup.String(), "port", d.McastPort)
	return nil
}

func (b *backup) stop() {
	_ = b.conn.Close() // unblocks the read
	<-b.exited
}

// logEvery bounds the backup's log lines about dropped entries.
const logEvery = 5 * time.Second

// runBackup is sync_thread_backup: read, decode, install.
func (m *Manager) runBackup(b *backup, threshold int) {
	defer close(b.exited)
	dec := ipvssync.Decoder{SyncID: b.cfg.SyncID, MaxLen: int(b.cfg.SyncMaxlen)}
	buf := make([]byte, 65536)
	var lastLog time.Time
	var unlogged uint64
	var first string
	visit := func(c *ipvssync.Conn) {
		m.c.recvEntries.Add(1)
		res, r := m.host.InstallSynced(c, threshold)
		switch r {
		case dataplane.SyncOK:
			if res == conntrack.SyncUpdated {
				m.c.updated.Add(1)
			} else {
				m.c.installed.Add(1)
			}
			return
		case dataplane.SyncStaleEntry:
			// The kernel ignores these silently: they describe a
			// connection the backup already replaced.
		default:
			if first == "" {
				first = fmt.Sprintf("%s: proto %d %s -> %s via %s", r, c.Protocol,
					netip.AddrPortFrom(c.CAddr, c.CPort), netip.AddrPortFrom(c.VAddr, c.VPort), netip.AddrPortFrom(c.DAddr, c.DPort))
			}
			unlogged++
		}
		m.c.install[r].Add(1)
	}
	for {
		n, err := b.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.c.recvErrs.Add(1)
			continue
		}
		before := dec.Messages
		var drops [ipvssync.NumReasons]uint64
		copy(drops[:], dec.Drops[:])
		_ = dec.Decode(buf[:n], visit)
		m.c.recvMsgs.Add(dec.Messages - before)
		for r := range drops {
			if d := dec.Drops[r] - drops[r]; d > 0 {
				m.c.decode[r].Add(d)
			}
		}
		if unlogged > 0 && time.Since(lastLog) >= logEvery {
			m.log.Warn("sync backup: entries dropped", "count", unlogged, "first", first)
			lastLog, unlogged, first = time.Now(), 0, ""
		}
	}
}
