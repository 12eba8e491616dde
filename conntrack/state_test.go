package conntrack

import (
	"strings"
	"testing"
)

// issueTable is the transition grid of issue 3, typed in independently of
// inputTable so a slip in either shows up as a failing cell.
const issueTable = `
syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR
fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW
ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES
rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL`

var abbrev = map[string]State{
	"NO": None, "ES": Established, "SS": SynSent, "SR": SynRecv, "FW": FinWait, "TW": TimeWait,
	"CL": Close, "CW": CloseWait, "LA": LastAck, "LI": Listen, "SA": SynAck,
}

func TestNextEveryCell(t *testing.T) {
	columns := []State{None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck}
	events := map[string]Event{"syn": EvSyn, "fin": EvFin, "ack": EvAck, "rst": EvRst}
	cells := 0
	for _, line := range strings.Split(strings.TrimSpace(issueTable), "\n") {
		f := strings.Split(line, "|")
		ev := events[strings.TrimSpace(f[0])]
		for i, from := range columns {
			want := abbrev[strings.TrimSpace(f[i+1])]
			t.Run(strings.TrimSpace(f[0])+"/"+from.String(), func(t *testing.T) {
				if got := Next(from, ev); got != want {
					t.Errorf("Next(%v, %v) = %v, want %v", from, ev, got, want)
				}
			})
			cells++
		}
	}
	if cells != 44 {
		t.Fatalf("checked %d cells, want 44", cells)
	}
}

func TestNextLeavesStateAlone(t *testing.T) {
	for s := range State(numStates + 2) {
		if got := Next(s, EvNone); got != s {
			t.Errorf("Next(%v, EvNone) = %v, want unchanged", s, got)
		}
	}
	for ev := EvNone; ev <= EvRst+1; ev++ {
		if got := Next(UDP, ev); got != UDP {
			t.Errorf("Next(UDP, %d) = %v, want UDP", ev, got)
		}
		if got := Next(State(200), ev); got != State(200) {
			t.Errorf("Next(200, %d) = %v, want unchanged", ev, got)
		}
	}
	if got := Next(Established, Event(9)); got != Established {
		t.Errorf("Next(ESTABLISHED, 9) = %v, want unchanged", got)
	}
}

func TestEventOfPriority(t *testing.T) {
	tests := []struct {
		flags uint8
		want  Event
	}{
		{0, EvNone},
		{flagACK, EvAck},
		{flagFIN, EvFin},
		{flagFIN | flagACK, EvFin},
		{flagSYN, EvSyn},
		{flagSYN | flagACK, EvSyn},
		{flagSYN | flagFIN, EvSyn},
		{flagRST, EvRst},
		{flagRST | flagACK, EvRst},
		{flagRST | flagSYN | flagFIN | flagACK, EvRst},
		{0x08 | 0x20 | 0x40 | 0x80, EvNone}, // PSH URG ECE CWR only
	}
	for _, tt := range tests {
		if got := EventOf(tt.flags); got != tt.want {
			t.Errorf("EventOf(%#02x) = %d, want %d", tt.flags, got, tt.want)
		}
	}
}

func TestStateNamesAndActive(t *testing.T) {
	want := "NONE ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN SYNACK UDP"
	var got []string
	for s := range State(numStates) {
		got = append(got, s.String())
	}
	if strings.Join(got, " ") != want {
		t.Errorf("names = %q, want %q", strings.Join(got, " "), want)
	}
	if State(99).String() != "ERR!" {
		t.Errorf("State(99) = %q", State(99).String())
	}
	active := map[State]bool{Established: true, SynSent: true, SynRecv: true, SynAck: true}
	for s := range State(numStates) {
		if s.Active() != active[s] {
			t.Errorf("%v.Active() = %v, want %v", s, s.Active(), active[s])
		}
		if wantEv := s == SynRecv || s == SynAck || !active[s]; s.evictable() != wantEv {
			t.Errorf("%v.evictable() = %v, want %v", s, s.evictable(), wantEv)
		}
	}
}

// TestEstablishedAckStays is the fact touch's shortcut rests on: an ACK
// leaves an ESTABLISHED connection ESTABLISHED in every direction, under
// tcp_states and under secure_tcp's tcp_states_dos.
func TestEstablishedAckStays(t *testing.T) {
	for _, d := range []Dir{DirInputOnly, DirInput, DirOutput} {
		if got := NextDir(Established, EvAck, d); got != Established {
			t.Errorf("tcp_states, direction %d: ESTABLISHED + ACK -> %v", d, got)
		}
		if got := NextSecureDir(Established, EvAck, d); got != Established {
			t.Errorf("tcp_states_dos, direction %d: ESTABLISHED + ACK -> %v", d, got)
		}
	}
}
