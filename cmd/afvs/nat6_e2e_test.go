package main

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/afvs/afvs/internal/testnet"
)

// forwarded6 reads the director namespace's Ip6OutForwDatagrams counter:
// the IPv6 packets its kernel routed on.
func forwarded6(t *testing.T, lab *testnet.Lab) uint64 {
	t.Helper()
	var v uint64
	found := false
	err := lab.Director.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6OutForwDatagrams" {
				found = true
				v, err = strconv.ParseUint(f[1], 10, 64)
				return err
			}
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("Ip6OutForwDatagrams: %v (found %v)", err, found)
	}
	return v
}

// TestEndToEndIPv6NAT: real HTTP over IPv6 through a VS/NAT service added
// with afvsadm -6 ... -m while afvs runs. The real servers hold no VIP,
// listen on 8080 for the service's port 80 and route through the
// director; the director's kernel forwards neither family, so every reply
// the client gets was rewritten by afvs (its Ip6OutForwDatagrams stays
// still, and the replies count out). Health checks (TCP to each real
// server's [addr]:8080) keep the servers up: their replies, to the
// director's own IPv6 address, reach its kernel, not afvs. After the
// neighbour tables of every namespace are flushed, connections work
// again: neighbour discovery between the real servers and the director
// passes the steering program to the kernels.
//
// In the two-interface layout the real servers sit behind the director's
// eth1: requests arrive on eth0 and leave on eth1, replies arrive on eth1
// and leave on eth0.
func TestEndToEndIPv6NAT(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two_interfaces=%v", two), func(t *testing.T) { testIPv6NAT(t, two) })
	}
}

func testIPv6NAT(t *testing.T, two bool) {
	lab := newLab(t, testnet.LabOptions{Mode: "nat", IPv6: true, Weights: []int{1, 2, 3}, TwoInterfaces: two,
		Health: "{interval: 300ms, timeout: 200ms, rise: 1, fall: 2}"})
	vip := netip.AddrPortFrom(testnet.VIP6, 80).String()
	mustAfvsadm(t, lab, "-A", "-t", vip, "-s", "wrr")
	for i, a := range lab.RealAddrs6 {
		mustAfvsadm(t, lab, "-a", "-t", vip, "-r", netip.AddrPortFrom(a, testnet.NATPort).String(), "-m", "-w", fmt.Sprint(lab.Opt.Weights[i]))
	}
	list := mustAfvsadm(t, lab, "-L", "-n")
	if !strings.Contains(list, "TCP  ["+testnet.VIP6.String()+"]:80 wrr") ||
		!strings.Contains(list, "-> ["+lab.RealAddrs6[2].String()+"]:8080") || !strings.Contains(list, "Masq") {
		t.Fatalf("afvsadm -L -n:\n%s", list)
	}
	fwdBefore := forwarded6(t, lab)
	const n = 300
	get := func(what string) {
		t.Helper()
		res := lab.GetFrom(testnet.VIP6, n, 6)
		if res.Failed != 0 || res.OK != n {
			t.Fatalf("%s: %d of %d requests failed: %v", what, res.Failed, n, res.Errors)
		}
		for i, name := range lab.Names {
			want := float64(n) * float64(lab.Opt.Weights[i]) / 6
			if got := float64(res.By[name]); math.Abs(got-want) > 0.02*n {
				t.Errorf("%s: %s (weight %d) answered %v, want %v ± %v", what, name, lab.Opt.Weights[i], got, want, 0.02*n)
			}
		}
	}
	get("first round")
	flushNeighbours(t, lab)
	get("after the neighbour tables were flushed")

	st := quiesced(t, lab)
	if f := forwarded6(t, lab); f != fwdBefore {
		t.Errorf("the director's kernel forwarded %d IPv6 packets", f-fwdBefore)
	}
	svcs, err := lab.Control().Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 {
		t.Fatalf("services %+v", svcs)
	}
	var in, out uint64
	for _, r := range svcs[0].Reals {
		if r.Forward != "Masq" || r.Port != testnet.NATPort {
			t.Errorf("real server %s:%d listed as %s", r.Address, r.Port, r.Forward)
		}
		in += r.Stats.InPkts
		out += r.Stats.OutPkts
	}
	s := svcs[0].Stats
	// Each request's connection carries at least a SYN-ACK, the response
	// and a FIN back to the client.
	for _, r := range svcs[0].Reals {
		if !r.Up {
			t.Errorf("real server [%s]:%d is down: its health checks' replies did not reach the director's kernel", r.Address, r.Port)
		}
	}
	if s.Conns != 2*n || s.InPkts != in || s.OutPkts != out || out < 3*2*n {
		t.Errorf("service conns %d in %d out %d; real servers in %d out %d; want %d connections, at least %d out", s.Conns, s.InPkts, s.OutPkts, in, out, 2*n, 3*2*n)
	}
	if st.TX < in+out-st.Drops["neighbor_unresolved"] {
		t.Errorf("director tx %d, in %d + out %d; drops %v", st.TX, in, out, st.Drops)
	}
	for _, why := range []string{"reply_no_connection", "ttl_exceeded", "no_egress", "unsupported_forwarding", "frag_needed", "no_service"} {
		if st.Drops[why] != 0 {
			t.Errorf("drops %s: %d", why, st.Drops[why])
		}
	}
}
