package conntrack

// State is the state of one connection as IPVS tracks it. A director in
// VS/DR or VS/TUN mode sees only the client's half of a TCP connection, so
// the state is a guess driven by the client's flags alone (the input-only
// table), not the true TCP state of either end.
type State uint8

// The values follow IPVS's IP_VS_TCP_S_* order so that listings and
// timeouts line up with ipvsadm's.
const (
	None State = iota
	Established
	SynSent
	SynRecv
	FinWait
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	SynAck
	UDP

	numStates = iota
)

var stateNames = [numStates]string{
	"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK", "UDP",
}

// String returns the name ipvsadm -Lc prints for s.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "ERR!"
}

// Active reports whether a connection in state s counts towards its real
// server's ActiveConn rather than InActConn.
func (s State) Active() bool {
	return s == Established || s == SynSent || s == SynRecv || s == SynAck
}

// evictable reports whether the eviction order may drop a live connection
// in state s to make room: half-open SYN_RECV entries (the SYN flood) and
// everything not counted active. Established connections are never
// sacrificed to a flood.
func (s State) evictable() bool {
	return s == SynRecv || !s.Active()
}

// Event is the input a packet feeds the state machine.
type Event uint8

const (
	// EvNone is a packet that carries no TCP flag of interest, and every
	// UDP packet: it refreshes the entry without a transition.
	EvNone Event = iota
	EvSyn
	EvFin
	EvAck
	EvRst
)

// TCP header flag bits as they sit in the flags byte (offset 13).
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// EventOf classifies a TCP flags byte. IPVS looks at one flag per packet,
// in the priority rst > syn > fin > ack, so a SYN+ACK counts as a SYN and
// a FIN+ACK as a FIN.
func EventOf(tcpFlags uint8) Event {
	switch {
	case tcpFlags&flagRST != 0:
		return EvRst
	case tcpFlags&flagSYN != 0:
		return EvSyn
	case tcpFlags&flagFIN != 0:
		return EvFin
	case tcpFlags&flagACK != 0:
		return EvAck
	}
	return EvNone
}

// Short names keep the transition table readable as the grid it is in
// issue 3.
const (
	sNO = None
	sES = Established
	sSS = SynSent
	sSR = SynRecv
	sFW = FinWait
	sTW = TimeWait
	sCL = Close
	sCW = CloseWait
	sLA = LastAck
	sLI = Listen
	sSA = SynAck
)

// inputTable is IPVS's tcp_states "INPUT" half: rows are events (syn, fin,
// ack, rst), columns the current state.
var inputTable = [4][SynAck + 1]State{
	//        NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
	/*fin*/ {sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW},
	/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
	/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL},
}

// Next returns the state after a packet with event ev meets a connection
// in state s. UDP, EvNone and values outside the table leave s unchanged.
func Next(s State, ev Event) State {
	if ev == EvNone || ev > EvRst || s > SynAck {
		return s
	}
	return inputTable[ev-EvSyn][s]
}
