package ipvssync

// Ticks is the sync timing unit: the kernel counts jiffies; here one tick
// is a millisecond (HZ = 1000).
type Ticks = int64

// HZ is the number of Ticks in a second.
const HZ Ticks = 1000

// Settings are the sync sysctls (net.ipv4.vs.*) that decide when a
// connection is sent.
type Settings struct {
	// Threshold and Period are sync_threshold's two values: a connection
	// is sent when its packet count modulo Period equals Threshold (or,
	// with Period 0, once, when the count equals Threshold).
	Threshold int
	Period    int
	// RefreshPeriod (sync_refresh_period) limits how often an unchanged
	// connection is sent again, in Ticks; 0 turns the limit off.
	RefreshPeriod Ticks
	// Retries (sync_retries, 0..3) is how many times a limited
	// connection is re-sent at RefreshPeriod/8 intervals.
	Retries int
	// PersistMode (sync_persist_mode) sends no connection that a
	// persistence template controls; the template alone is sent.
	PersistMode bool
}

// DefaultSettings are the kernel's defaults: sync_threshold "3 50",
// sync_refresh_period 0, sync_retries 0, sync_persist_mode 0.
var DefaultSettings = Settings{Threshold: 3, Period: 50}

// SyncState is what a connection remembers between sync decisions:
// struct ip_vs_conn's old_state and sync_endtime.
type SyncState struct {
	// OldState is the state the connection was last sent in.
	OldState uint16
	// EndTime is when the last sent copy would expire on the backup
	// (now + timeout at sending, rounded down to a multiple of 4), with
	// the retry count in its low two bits. A new connection starts with
	// its creation time rounded down to a multiple of 4.
	EndTime Ticks
}

// ConnInfo is the part of a connection the decision reads.
type ConnInfo struct {
	Protocol uint8
	State    uint16
	Flags    uint32
	Timeout  Ticks // the connection's current timeout
	// InPersistence says a persistence template controls the connection
	// (in_persistence: some controller up the chain has FlagTemplate).
	InPersistence bool
}

// Needed is ip_vs_sync_conn_needed: whether the master sends connection c
// now, with pkts its incoming packet count including this packet (the
// caller passes Threshold for one-packet connections, and for a template
// its own count, incremented, when a connection it controls is sent). It
// updates st as the kernel updates the connection when the answer is yes.
func Needed(s *Settings, c *ConnInfo, st *SyncState, pkts int, now Ticks) bool {
	orig := st.EndTime
	n := (now + c.Timeout) &^ 3
	force := false
	switch {
	case c.Flags&FlagTemplate != 0:
	case s.PersistMode && c.InPersistence:
		return false
	case c.Protocol == ProtoTCP:
		const want = 1<<TCPEstablished | 1<<TCPFinWait | 1<<TCPClose | 1<<TCPCloseWait | 1<<TCPTimeWait
		if c.State >= 32 || (1<<c.State)&want == 0 {
			return false
		}
		force = c.State != st.OldState
		if force && c.State != TCPEstablished {
			return set(c, st, n)
		}
	case c.Protocol == ProtoSCTP:
		const want = 1<<SCTPEstablished | 1<<SCTPShutdownSent | 1<<SCTPShutdownReceived | 1<<SCTPShutdownAckSent | 1<<SCTPClosed
		if c.State >= 32 || (1<<c.State)&want == 0 {
			return false
		}
		force = c.State != st.OldState
		if force && c.State != SCTPEstablished {
			return set(c, st, n)
		}
	}
	if s.RefreshPeriod > 0 {
		diff := n - orig
		if diff < 0 {
			diff = -diff
		}
		minDiff := max(c.Timeout>>1, 10*HZ)
		// Not worth sending yet: the backup's copy lives on long enough.
		if diff < min(s.RefreshPeriod, minDiff) {
			retries := int(orig & 3)
			if retries >= s.Retries {
				return false
			}
			if now < orig-c.Timeout+s.RefreshPeriod>>3 {
				return false
			}
			n |= Ticks(retries + 1)
		}
	}
	if s.Period > 0 {
		if c.Flags&FlagTemplate == 0 && pkts%s.Period != s.Threshold {
			return false
		}
	} else if s.RefreshPeriod == 0 && pkts != s.Threshold {
		return false
	}
	return set(c, st, n)
}

// set is the kernel's "set:" label: remember the state sent and the new
// end time. The kernel's compare-and-swap cannot lose here, as one
// caller owns st.
func set(c *ConnInfo, st *SyncState, n Ticks) bool {
	st.OldState = c.State
	st.EndTime = n
	return true
}
