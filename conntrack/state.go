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
// in state s to make room: half-open SYN_RECV entries (the SYN flood),
// SYNACK ones (where secure_tcp puts a SYN), and everything not counted
// active. Established connections are never sacrificed to a flood.
func (s State) evictable() bool {
	return s == SynRecv || s == SynAck || !s.Active()
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

// Dir is the direction a packet travels relative to its connection, and
// so which half of IPVS's tcp_states it moves the state by
// (tcp_state_off in ip_vs_proto_tcp.c).
type Dir uint8

const (
	// DirInputOnly: a client packet of a connection whose replies never
	// pass the director (VS/DR, VS/TUN; IPVS's IP_VS_CONN_F_NOOUTPUT).
	// This is Next's table.
	DirInputOnly Dir = iota
	// DirInput: a client packet of a VS/NAT connection.
	DirInput
	// DirOutput: a real server's reply of a VS/NAT connection.
	DirOutput
)

// fullInputTable is tcp_states' "INPUT" half, used for the client packets
// of connections whose replies the director sees too. It differs from the
// input-only table where a reply is expected to carry the news: a client
// FIN on ESTABLISHED is CLOSE_WAIT (the server has not closed yet) and a
// RST on SYNACK goes back to SYN_RECV.
var fullInputTable = [4][SynAck + 1]State{
	//        NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	/*syn*/ {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
	/*fin*/ {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
	/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
	/*rst*/ {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
}

// outputTable is tcp_states' "OUTPUT" half: the real server's packets of
// a VS/NAT connection (its SYN-ACK is a SYN event, as EventOf ranks
// flags).
var outputTable = [4][SynAck + 1]State{
	//        NONE ES   SS   SR   FW   TW   CL   CW   LA   LI   SA
	/*syn*/ {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
	/*fin*/ {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
	/*ack*/ {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
	/*rst*/ {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
}

// NextDir is Next for a TCP packet travelling in direction d:
// DirInputOnly is exactly Next. In the two NAT directions a packet with
// none of SYN, FIN, ACK and RST moves the connection to CLOSE, as
// set_tcp_state does when tcp_state_idx finds no flag.
func NextDir(s State, ev Event, d Dir) State {
	if d == DirInputOnly {
		return Next(s, ev)
	}
	if s > SynAck || ev > EvRst {
		return s
	}
	if ev == EvNone {
		return Close
	}
	switch d {
	case DirInput:
		return fullInputTable[ev-EvSyn][s]
	case DirOutput:
		return outputTable[ev-EvSyn][s]
	}
	return inputTable[ev-EvSyn][s]
}
