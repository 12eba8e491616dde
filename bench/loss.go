package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/afvs/afvs/dataplane/nic"
	"github.com/afvs/afvs/dataplane/xsk"
)

// Loss accounts for the frames the generator sent that the forwarder did
// not receive (Sent - ForwarderRX), by where the kernel counted them, as
// deltas over the measured run (from before the generator starts to after
// the settling pause). A part that could not be read is nil and named in
// Unavailable with the reason, never shown as zero.
type Loss struct {
	// Interface is the director's receiving interface (eth0; eth1 in
	// nat-reply, where the replies arrive).
	Interface string `json:"interface"`
	// Socket is the kernel's XDP_STATISTICS of the forwarder's receiving
	// socket (all of afvs's workers on Interface, summed).
	Socket *SocketLoss `json:"socket,omitempty"`
	// Steering is what the XDP program counted: every frame it saw, those
	// it redirected to the socket, those it passed to the kernel's stack
	// (the baseline's redirect-all on Interface; afvs's steering
	// programs, summed over its interfaces).
	Steering *SteeringLoss `json:"steering,omitempty"`
	// Link is the kernel's netlink counters: TxDropped of the sending end
	// of the veth, where veth counts a frame it could not queue to its
	// peer, and RxDropped of Interface. veth adds to RxDropped the frames
	// whose redirect failed, which includes every frame the socket
	// refused: it overlaps Socket and is not added to the accounted loss.
	Link *LinkLoss `json:"link,omitempty"`
	// Driver is the veth driver's own statistics of Interface (as
	// ethtool -S names them) that moved during the run, such as
	// rx_queue_0_xdp_drops: frames the XDP program's verdict dropped,
	// including redirects the socket refused.
	Driver map[string]uint64 `json:"driver,omitempty"`
	// Unavailable names each part that could not be read, and why.
	Unavailable []string `json:"unavailable,omitempty"`
}

// SocketLoss is the receiving socket's XDP_STATISTICS over the run.
type SocketLoss struct {
	// RxRingFull is frames dropped because the RX ring was full: the
	// forwarder did not take them in time.
	RxRingFull uint64 `json:"rx_ring_full"`
	// RxDropped is frames dropped for other reasons; in copy mode
	// (veth) that includes every frame for which the fill ring was empty.
	RxDropped uint64 `json:"rx_dropped"`
	// RxFillRingEmpty is times the kernel found the fill ring empty: the
	// forwarder did not give frames back in time.
	RxFillRingEmpty uint64 `json:"rx_fill_ring_empty"`
	RxInvalidDescs  uint64 `json:"rx_invalid_descs"`
	TxInvalidDescs  uint64 `json:"tx_invalid_descs"`
}

// SteeringLoss is the XDP program's own counters over the run.
type SteeringLoss struct {
	Total      uint64 `json:"total"`
	Redirected uint64 `json:"redirected"`
	Passed     uint64 `json:"passed"`
}

// LinkLoss is the kernel's drop counters of the link over the run.
type LinkLoss struct {
	RxDropped     uint64 `json:"rx_dropped"`
	PeerTxDropped uint64 `json:"peer_tx_dropped"`
}

// SocketDrops is the frames the receiving socket refused: RxRingFull
// plus RxDropped (of which the fill-ring-empty ones); nil when unknown.
func (l *Loss) SocketDrops() (uint64, bool) {
	if l == nil || l.Socket == nil {
		return 0, false
	}
	return l.Socket.RxRingFull + l.Socket.RxDropped, true
}

// BeforeSocket is the frames that never reached the socket but that a
// counter saw: those veth could not queue to the receiving end
// (Link.PeerTxDropped) and those the XDP program passed to the kernel's
// stack (Steering.Passed). ok is false when either part is unknown.
func (l *Loss) BeforeSocket() (uint64, bool) {
	if l == nil || l.Link == nil || l.Steering == nil {
		return 0, false
	}
	return l.Link.PeerTxDropped + l.Steering.Passed, true
}

// NotSeen is sent less the frames the XDP program saw, when that is
// positive: frames the generator's kernel completed that no counter of
// the receiving side shows (lost on the way, or counted at the sending
// end as PeerTxDropped).
func (l *Loss) NotSeen(sent uint64) (uint64, bool) {
	if l == nil || l.Steering == nil {
		return 0, false
	}
	if sent <= l.Steering.Total {
		return 0, true
	}
	return sent - l.Steering.Total, true
}

// Accounted is every loss a counter explains: SocketDrops plus
// BeforeSocket, the parts that are known; ok when all are.
func (l *Loss) Accounted() (n uint64, ok bool) {
	s, ok1 := l.SocketDrops()
	b, ok2 := l.BeforeSocket()
	return s + b, ok1 && ok2
}

// lossSnapshot is the counters behind Loss at one moment; a nil part
// could not be read, for the reason in its err.
type lossSnapshot struct {
	socket   *xsk.KernelStats
	steering *SteeringLoss
	link     *LinkLoss
	driver   map[string]uint64
	errs     map[string]string
}

func (s *lossSnapshot) fail(part string, err error) {
	if s.errs == nil {
		s.errs = map[string]string{}
	}
	s.errs[part] = err.Error()
}

// lossOf is the counters' movement from a to b.
func lossOf(iface string, a, b lossSnapshot) *Loss {
	l := &Loss{Interface: iface}
	unavailable := map[string]string{}
	for _, s := range []lossSnapshot{a, b} {
		maps.Copy(unavailable, s.errs)
	}
	if a.socket != nil && b.socket != nil {
		l.Socket = &SocketLoss{
			RxRingFull:      b.socket.RxRingFull - a.socket.RxRingFull,
			RxDropped:       b.socket.RxDropped - a.socket.RxDropped,
			RxFillRingEmpty: b.socket.RxFillRingEmpty - a.socket.RxFillRingEmpty,
			RxInvalidDescs:  b.socket.RxInvalidDescs - a.socket.RxInvalidDescs,
			TxInvalidDescs:  b.socket.TxInvalidDescs - a.socket.TxInvalidDescs,
		}
	} else if unavailable["socket"] == "" {
		unavailable["socket"] = "the forwarder has no AF_XDP socket"
	}
	if a.steering != nil && b.steering != nil {
		l.Steering = &SteeringLoss{Total: b.steering.Total - a.steering.Total, Redirected: b.steering.Redirected - a.steering.Redirected,
			Passed: b.steering.Passed - a.steering.Passed}
	} else if unavailable["steering"] == "" {
		unavailable["steering"] = "the XDP program keeps no counters"
	}
	if a.link != nil && b.link != nil {
		l.Link = &LinkLoss{RxDropped: b.link.RxDropped - a.link.RxDropped, PeerTxDropped: b.link.PeerTxDropped - a.link.PeerTxDropped}
	}
	if a.driver != nil && b.driver != nil {
		l.Driver = map[string]uint64{}
		for k, v := range b.driver {
			if d := v - a.driver[k]; d > 0 && k != "peer_ifindex" && !strings.HasSuffix(k, "_bytes") {
				l.Driver[k] = d
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(unavailable)) {
		l.Unavailable = append(l.Unavailable, k+": "+unavailable[k])
	}
	return l
}

// readLinkLoss reads the link half of a snapshot: the receiving
// interface's counters and driver stats in the director's namespace, the
// sending end's in the generator's.
func readLinkLoss(s *lossSnapshot, recv, send link) {
	var rx, tx nic.LinkCounters
	err := recv.ns.Do(func() (err error) { rx, err = nic.LinkStats(recv.name); return err })
	if err == nil {
		err = send.ns.Do(func() (err error) { tx, err = nic.LinkStats(send.name); return err })
	}
	if err != nil {
		s.fail("link", err)
	} else {
		s.link = &LinkLoss{RxDropped: rx.RxDropped, PeerTxDropped: tx.TxDropped}
	}
	var drv map[string]uint64
	if err := recv.ns.Do(func() (err error) { drv, err = nic.DriverStats(recv.name); return err }); err != nil {
		s.fail("driver", err)
	} else {
		s.driver = drv
	}
}

// lossLegend heads the loss lines of the text table.
const lossLegend = "where sent - fwd rx went, over the run: ring full, fill ring empty and other socket drops from the receiving AF_XDP socket's XDP_STATISTICS;" +
	" before the socket: the sending veth's tx_dropped (veth queue) and the XDP program's passes to the kernel; veth rx dropped counts the socket's refusals again"

// lossLine is the text table's second line for r: where the frames the
// forwarder did not receive went, "n/a" for a counter this run could not
// read.
func lossLine(r Result) string {
	l := r.Loss
	if l == nil {
		return ""
	}
	na := func(v uint64, ok bool) string {
		if !ok {
			return "n/a"
		}
		return fmt.Sprint(v)
	}
	var missed uint64
	if r.Sent > r.ForwarderRX {
		missed = r.Sent - r.ForwarderRX
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %s lost on %s: sent - fwd rx %d", r.name(), l.Interface, missed)
	if l.Socket != nil {
		other := l.Socket.RxDropped - min(l.Socket.RxDropped, l.Socket.RxFillRingEmpty)
		fmt.Fprintf(&b, "; ring full %d, fill ring empty %d, other socket drops %d", l.Socket.RxRingFull, l.Socket.RxFillRingEmpty, other)
		if l.Socket.RxInvalidDescs+l.Socket.TxInvalidDescs > 0 {
			fmt.Fprintf(&b, ", invalid descs rx %d tx %d", l.Socket.RxInvalidDescs, l.Socket.TxInvalidDescs)
		}
	} else {
		b.WriteString("; socket n/a")
	}
	before, ok := l.BeforeSocket()
	fmt.Fprintf(&b, "; before the socket %s", na(before, ok))
	var parts []string
	if l.Link != nil {
		parts = append(parts, fmt.Sprintf("veth queue %d", l.Link.PeerTxDropped))
	}
	if l.Steering != nil {
		parts = append(parts, fmt.Sprintf("passed to the kernel %d", l.Steering.Passed))
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	if acc, ok := l.Accounted(); ok {
		if acc <= missed {
			fmt.Fprintf(&b, "; unexplained %d", missed-acc)
		} else {
			fmt.Fprintf(&b, "; counted %d more than missing", acc-missed)
		}
	}
	if ns, ok := l.NotSeen(r.Sent); ok {
		fmt.Fprintf(&b, "; xdp saw %d, sent - xdp saw %d", l.Steering.Total, ns)
	}
	if l.Link != nil {
		fmt.Fprintf(&b, "; veth rx dropped %d", l.Link.RxDropped)
	}
	if len(l.Driver) > 0 {
		var d []string
		for _, k := range slices.Sorted(maps.Keys(l.Driver)) {
			d = append(d, fmt.Sprintf("%s %d", k, l.Driver[k]))
		}
		fmt.Fprintf(&b, "; veth driver: %s", strings.Join(d, ", "))
	}
	for _, u := range l.Unavailable {
		fmt.Fprintf(&b, "; n/a %s", u)
	}
	return b.String()
}
