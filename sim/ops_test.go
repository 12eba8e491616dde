package sim

import (
	"testing"

	"github.com/afvs/afvs/vs"
)

// TestRunOnePacket: the simulator runs the dataplane's own one-packet
// path. A round-robin -o service spreads one client socket's datagrams
// over the servers, one decision line each (each datagram is a
// connection, as ip_vs_conn_stats counts it); an admin -E without -o
// turns it off and the socket's next datagrams make one connection,
// which -E -o does not move (a kept connection matches first), while a
// new socket is spread again.
func TestRunOnePacket(t *testing.T) {
	tbl := table(t, vs.UDP, "rr", 1, 1, 1)
	tbl.Services[0].OnePacket = true
	trace := `0,udp,198.18.64.1,40000,198.19.0.1,80,-
1,udp,198.18.64.1,40000,198.19.0.1,80,-
2,udp,198.18.64.1,40000,198.19.0.1,80,-
3,udp,198.18.64.1,40000,198.19.0.1,80,-
4,admin,-E -u 198.19.0.1:80 -s rr
5,udp,198.18.64.1,40001,198.19.0.1,80,-
6,udp,198.18.64.1,40001,198.19.0.1,80,-
7,admin,-E -u 198.19.0.1:80 -s rr -o
8,udp,198.18.64.1,40001,198.19.0.1,80,-
9,udp,198.18.64.1,40002,198.19.0.1,80,-
10,udp,198.18.64.1,40002,198.19.0.1,80,-
`
	want := `0,udp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
1,udp,198.18.64.1,40000,198.19.0.1,80,198.18.1.2:80
2,udp,198.18.64.1,40000,198.19.0.1,80,198.18.1.3:80
3,udp,198.18.64.1,40000,198.19.0.1,80,198.18.1.1:80
5,udp,198.18.64.1,40001,198.19.0.1,80,198.18.1.2:80
9,udp,198.18.64.1,40002,198.19.0.1,80,198.18.1.3:80
10,udp,198.18.64.1,40002,198.19.0.1,80,198.18.1.1:80
`
	got, sum := run(t, tbl, trace, Options{})
	if got != want {
		t.Errorf("decisions:\n%s\nwant:\n%s", got, want)
	}
	if sum.Conns != 7 {
		t.Errorf("summary counts %d connections, want 7", sum.Conns)
	}
}
