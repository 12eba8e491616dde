package control

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/afvs/afvs/conntrack"
	"github.com/afvs/afvs/control/api"
	"github.com/afvs/afvs/dataplane"
)

// MetricsSource is what the collector reads at scrape time.
type MetricsSource interface {
	Director
	Loads() Loads
	TableStatus() api.TableStatus
}

// TableStatus reports the occupancy and counters of connection table ct,
// as /v1/status and the metrics show them.
func TableStatus(ct *conntrack.Table) api.TableStatus {
	s := ct.Stats()
	return api.TableStatus{Entries: s.Entries, Templates: s.Templates, Capacity: s.Capacity, Inserted: s.Inserted,
		Expired: s.Expired, Evicted: s.Evicted, Refused: s.Refused, Bytes: uint64(ct.Bytes())}
}

// DefenseStatus reports the flood defence of connection table ct and the
// SYN limits l, as /v1/status and the metrics show them.
func DefenseStatus(ct *conntrack.Table, l dataplane.SYNLimits) *api.DefenseStatus {
	d := ct.Defense()
	return &api.DefenseStatus{DropEntry: d.DropEntry, DropPacket: d.DropPacket, SecureTCP: d.SecureTCP,
		DropEntryOn: d.DropEntryOn, DropRate: d.DropRate, SecureTCPOn: d.SecureTCPOn, FreeEntries: d.Free,
		AmemThresh: d.AmemThresh, EntriesDropped: d.Dropped,
		SYNRateSource: l.PerSource, SYNRateService: l.PerService, SYNBurst: l.Burst}
}

// collector turns the director's counters into Prometheus metrics at scrape
// time, so nothing on the hot path knows about Prometheus.
type collector struct {
	s   *Server
	src MetricsSource
}

var (
	descSvcConns  = prometheus.NewDesc("afvs_service_connections_total", "Connections scheduled for the virtual service.", []string{"service"}, nil)
	descSvcPkts   = prometheus.NewDesc("afvs_service_packets_total", "Packets of the virtual service, as ipvsadm --stats counts them: in = from clients, passed to real servers; out = replies passing the director (none with DR and TUN).", []string{"service", "direction"}, nil)
	descSvcBytes  = prometheus.NewDesc("afvs_service_bytes_total", "IP-layer bytes of the virtual service, as ipvsadm --stats counts them: in = from clients; out = replies passing the director (none with DR and TUN).", []string{"service", "direction"}, nil)
	descRealConns = prometheus.NewDesc("afvs_real_connections_total", "Connections scheduled to the real server.", []string{"service", "real"}, nil)
	descRealPkts  = prometheus.NewDesc("afvs_real_packets_total", "Packets of the real server, as ipvsadm --stats counts them: in = from clients, passed to it; out = its replies passing the director (none with DR and TUN).", []string{"service", "real", "direction"}, nil)
	descRealBytes = prometheus.NewDesc("afvs_real_bytes_total", "IP-layer bytes of the real server, as ipvsadm --stats counts them: in = from clients; out = its replies passing the director (none with DR and TUN).", []string{"service", "real", "direction"}, nil)
	descRealAct   = prometheus.NewDesc("afvs_real_active_connections", "ActiveConn as ipvsadm shows it.", []string{"service", "real"}, nil)
	descRealInact = prometheus.NewDesc("afvs_real_inactive_connections", "InActConn as ipvsadm shows it.", []string{"service", "real"}, nil)
	descRealW     = prometheus.NewDesc("afvs_real_weight", "Real server weight (0 = quiesced).", []string{"service", "real"}, nil)
	descCTEntries = prometheus.NewDesc("afvs_conntrack_entries", "Connections in the table.", nil, nil)
	descCTTmpl    = prometheus.NewDesc("afvs_conntrack_templates", "Persistence templates in the table.", nil, nil)
	descCTCap     = prometheus.NewDesc("afvs_conntrack_capacity", "Configured connection table capacity.", nil, nil)
	descCTBytes   = prometheus.NewDesc("afvs_conntrack_memory_bytes", "Memory the connection table holds, allocated and faulted in at start.", nil, nil)
	descCTEvict   = prometheus.NewDesc("afvs_conntrack_evictions_total", "Live connections evicted to make room.", nil, nil)
	descCTRefused = prometheus.NewDesc("afvs_conntrack_refused_total", "New connections refused because the table was full.", nil, nil)
	descCTExpired = prometheus.NewDesc("afvs_conntrack_expired_total", "Connections expired by timeout.", nil, nil)
	descDrops     = prometheus.NewDesc("afvs_drops_total", "Frames dropped by the workers, by reason.", []string{"reason"}, nil)
	descICMP      = prometheus.NewDesc("afvs_icmp_sent_total", "ICMP fragmentation-needed replies sent.", nil, nil)
	descFrag      = prometheus.NewDesc("afvs_fragmented_total", "VS/TUN packets without DF sent as two inner fragments.", nil, nil)
	descICMPFwd   = prometheus.NewDesc("afvs_icmp_forwarded_total", "ICMP errors passed to the real server of the connection they quote.", nil, nil)
	descQRX       = prometheus.NewDesc("afvs_queue_rx_packets_total", "Frames received per queue.", []string{"dev", "queue"}, nil)
	descQTX       = prometheus.NewDesc("afvs_queue_tx_packets_total", "Frames transmitted per queue.", []string{"dev", "queue"}, nil)
	descQFull     = prometheus.NewDesc("afvs_queue_tx_ring_full_total", "Frames dropped because the TX ring was full, per queue.", []string{"dev", "queue"}, nil)
	descQNoFrame  = prometheus.NewDesc("afvs_queue_no_free_frame_total", "Frames that found no free UMEM frame, per queue.", []string{"dev", "queue"}, nil)
	descQPortErr  = prometheus.NewDesc("afvs_queue_port_errors_total", "Kick or Wait calls on a queue's sockets that failed, per queue.", []string{"dev", "queue"}, nil)
	descQRing     = prometheus.NewDesc("afvs_queue_ring_events_total", "AF_XDP ring events per queue: fill_ring_empty, tx_ring_full, kick_errors, rx_batches (receives that returned frames: afvs_queue_rx_packets_total over it is the mean batch), and the kernel's rx_dropped, rx_ring_full, rx_fill_ring_empty.", []string{"dev", "queue", "event"}, nil)
	descLocal     = prometheus.NewDesc("afvs_local_total", "Local-node work of the workers: packets delivered to the director's own stack, connections whose later frames the steering program passes to the kernel, and connections its flow map had no room for.", []string{"event"}, nil)
	descSYNProxy  = prometheus.NewDesc("afvs_syn_proxy_total", "SYN proxy work: cookies (SYN-ACKs with a cookie sent), opened (valid cookies: SYNs sent to real servers), established (real servers' SYN-ACKs answered), held (client segments held meanwhile), resent (SYNs sent again on a client's retransmission), hold_replaced (held segments given up for a newer connection's).", []string{"event"}, nil)
	descSYNDrops  = prometheus.NewDesc("afvs_syn_drops_total", "TCP SYNs dropped instead of opening a connection, by reason (also counted in afvs_drops_total).", []string{"reason"}, nil)
	descDefLevel  = prometheus.NewDesc("afvs_defense_level", "IPVS defence values as the kernel shows them: 0 off, 1 automatic and idle, 2 automatic and on, 3 always on.", []string{"strategy"}, nil)
	descDefOn     = prometheus.NewDesc("afvs_defense_active", "1 while the IPVS defence acts.", []string{"strategy"}, nil)
	descDefRate   = prometheus.NewDesc("afvs_defense_drop_rate", "drop_packet drops one new connection in this many; 0 drops none.", nil, nil)
	descDefFree   = prometheus.NewDesc("afvs_conntrack_free_entries", "Free connection entries at the defence's last update (the automatic modes act below afvs_defense_amemthresh).", nil, nil)
	descDefThresh = prometheus.NewDesc("afvs_defense_amemthresh", "Free-entry threshold of the automatic defences.", nil, nil)
	descDefDrop   = prometheus.NewDesc("afvs_defense_entries_dropped_total", "Connection entries dropped by drop_entry.", nil, nil)
	descSyncMsgs  = prometheus.NewDesc("afvs_sync_messages_total", "Connection-sync messages (datagrams): sent by the master, received and accepted by the backup.", []string{"direction"}, nil)
	descSyncEnts  = prometheus.NewDesc("afvs_sync_entries_total", "Connection-sync entries: sent by the master, received by the backup.", []string{"direction"}, nil)
	descSyncInst  = prometheus.NewDesc("afvs_sync_installed_total", "Entries the sync backup installed: made new, or refreshed an existing entry.", []string{"result"}, nil)
	descSyncDrops = prometheus.NewDesc("afvs_sync_drops_total", "Connection-sync messages and entries dropped, by reason (queue_full: records the workers could not queue; send_error, receive_error: socket errors).", []string{"reason"}, nil)
	descSyncRun   = prometheus.NewDesc("afvs_sync_daemon_running", "1 while the sync daemon of this role runs.", []string{"state"}, nil)
	descSyncInfo  = prometheus.NewDesc("afvs_sync_daemon_info", "1 for each running sync daemon, labelled with the values it runs with, as afvsadm -L --daemon lists them (mcast_group is IPv4 or IPv6).", syncInfoLabels, nil)
	descBuild     = prometheus.NewDesc("afvs_build_info", "Build information.", []string{"version", "goversion"}, nil)
)

// syncInfoLabels are afvs_sync_daemon_info's labels: the sync daemon's
// settings, named as in the status.
var syncInfoLabels = []string{"state", "mcast_interface", "syncid", "sync_maxlen", "mcast_group", "mcast_port", "mcast_ttl"}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSvcConns, descSvcPkts, descSvcBytes, descRealConns, descRealPkts, descRealBytes, descRealAct, descRealInact, descRealW,
		descCTEntries, descCTTmpl, descCTCap, descCTBytes, descCTEvict, descCTRefused, descCTExpired, descDrops, descICMP, descFrag, descICMPFwd, descQRX, descQTX, descQFull, descQNoFrame, descQPortErr, descQRing, descLocal,
		descSyncMsgs, descSyncEnts, descSyncInst, descSyncDrops, descSyncRun, descSyncInfo, descBuild,
		descSYNDrops, descSYNProxy, descDefLevel, descDefOn, descDefRate, descDefFree, descDefThresh, descDefDrop} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	for _, svc := range c.s.Services(c.src.Loads()) {
		name := svcLabel(svc)
		counter(descSvcConns, svc.Stats.Conns, name)
		counter(descSvcPkts, svc.Stats.InPkts, name, "in")
		counter(descSvcPkts, svc.Stats.OutPkts, name, "out")
		counter(descSvcBytes, svc.Stats.InBytes, name, "in")
		counter(descSvcBytes, svc.Stats.OutBytes, name, "out")
		for _, r := range svc.Reals {
			rn := realLabel(r)
			counter(descRealConns, r.Stats.Conns, name, rn)
			counter(descRealPkts, r.Stats.InPkts, name, rn, "in")
			counter(descRealPkts, r.Stats.OutPkts, name, rn, "out")
			counter(descRealBytes, r.Stats.InBytes, name, rn, "in")
			counter(descRealBytes, r.Stats.OutBytes, name, rn, "out")
			gauge(descRealAct, float64(r.Active), name, rn)
			gauge(descRealInact, float64(r.Inactive), name, rn)
			gauge(descRealW, float64(r.Weight), name, rn)
		}
	}
	ts := c.src.TableStatus()
	gauge(descCTEntries, float64(ts.Entries))
	gauge(descCTTmpl, float64(ts.Templates))
	gauge(descCTCap, float64(ts.Capacity))
	gauge(descCTBytes, float64(ts.Bytes))
	counter(descCTEvict, ts.Evicted)
	counter(descCTRefused, ts.Refused)
	counter(descCTExpired, ts.Expired)
	st := c.s.Status()
	for reason, n := range st.Drops {
		counter(descDrops, n, reason)
	}
	for reason, n := range st.SYNDrops {
		counter(descSYNDrops, n, reason)
	}
	if d := st.Defense; d != nil {
		b := map[bool]float64{true: 1}
		for _, x := range []struct {
			name  string
			level int
			on    bool
		}{{"drop_entry", d.DropEntry, d.DropEntryOn}, {"drop_packet", d.DropPacket, d.DropRate > 0}, {"secure_tcp", d.SecureTCP, d.SecureTCPOn}} {
			gauge(descDefLevel, float64(x.level), x.name)
			gauge(descDefOn, b[x.on], x.name)
		}
		gauge(descDefRate, float64(d.DropRate))
		gauge(descDefFree, float64(d.FreeEntries))
		gauge(descDefThresh, float64(d.AmemThresh))
		counter(descDefDrop, d.EntriesDropped)
	}
	counter(descICMP, st.ICMPSent)
	counter(descFrag, st.Fragmented)
	counter(descLocal, st.Local.Delivered, "delivered")
	counter(descLocal, st.Local.Flows, "flows")
	counter(descLocal, st.Local.Full, "map_full")
	counter(descICMPFwd, st.ICMPForwarded)
	for ev, v := range map[string]uint64{"cookies": st.SYNProxy.Cookies, "opened": st.SYNProxy.Opened, "established": st.SYNProxy.Established,
		"held": st.SYNProxy.Held, "resent": st.SYNProxy.Resent, "hold_replaced": st.SYNProxy.HoldReplaced} {
		counter(descSYNProxy, v, ev)
	}
	for _, w := range c.src.Workers() {
		q := fmt.Sprint(w.Queue)
		counter(descQRX, w.C.RX.Load(), w.Dev, q)
		counter(descQTX, w.C.TX.Load(), w.Dev, q)
		counter(descQFull, w.C.Drops[dataplane.DropTxRingFull].Load(), w.Dev, q)
		counter(descQNoFrame, w.C.Drops[dataplane.DropNoFreeFrame].Load(), w.Dev, q)
		counter(descQPortErr, w.C.PortErrors.Load(), w.Dev, q)
		if sc, ok := w.Sockets(); ok {
			for ev, v := range map[string]uint64{"fill_ring_empty": sc.FillEmpty, "tx_ring_full": sc.TxFull, "kick_errors": sc.KickErrors,
				"rx_batches": sc.RxBatches, "rx_dropped": sc.RxDropped, "rx_ring_full": sc.RxRingFull, "rx_fill_ring_empty": sc.RxFillRingEmpty} {
				counter(descQRing, v, w.Dev, q, ev)
			}
		}
	}
	sy := st.Sync
	counter(descSyncMsgs, sy.SentMessages, "sent")
	counter(descSyncMsgs, sy.RecvMessages, "received")
	counter(descSyncEnts, sy.SentEntries, "sent")
	counter(descSyncEnts, sy.RecvEntries, "received")
	counter(descSyncInst, sy.Installed, "inserted")
	counter(descSyncInst, sy.Updated, "updated")
	for reason, n := range sy.Drops {
		counter(descSyncDrops, n, reason)
	}
	counter(descSyncDrops, sy.QueueFull, "queue_full")
	counter(descSyncDrops, sy.SendErrors, "send_error")
	counter(descSyncDrops, sy.ReceiveErrors, "receive_error")
	running := map[string]float64{"master": 0, "backup": 0}
	for _, d := range sy.Daemons {
		running[d.State] = 1
		gauge(descSyncInfo, 1, d.State, d.Interface, fmt.Sprint(d.SyncID), fmt.Sprint(d.MaxLen), d.Group, fmt.Sprint(d.Port), fmt.Sprint(d.TTL))
	}
	for state, v := range running {
		gauge(descSyncRun, v, state)
	}
	gauge(descBuild, 1, api.Version, runtime.Version())
}

// svcLabel names a service in the metrics' service label:
// "tcp:198.19.0.1:80", "tcp:[2001:2::1]:80" (an IPv6 address in brackets,
// as ipvsadm prints it, so the port stays apart), "fwm:7", or "fwm:7:ipv6"
// for the IPv6 firewall-mark service, which IPVS keys apart from the IPv4
// one with the same mark.
func svcLabel(s api.Service) string {
	if s.FWMark != 0 {
		if s.IPv6 {
			return fmt.Sprintf("fwm:%d:ipv6", s.FWMark)
		}
		return fmt.Sprintf("fwm:%d", s.FWMark)
	}
	return s.Proto + ":" + net.JoinHostPort(s.Address, strconv.Itoa(int(s.Port)))
}

// realLabel names a real server in the metrics' real label:
// "198.18.0.11:80" or "[2001:2::11]:80".
func realLabel(r api.Real) string {
	return net.JoinHostPort(r.Address, strconv.Itoa(int(r.Port)))
}

// MetricsHandler serves /metrics for the server's director.
func MetricsHandler(s *Server, src MetricsSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s, src})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
