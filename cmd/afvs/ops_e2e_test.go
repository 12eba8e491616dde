package main

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testnet"
)

// startUDPNamer serves UDP on addr in ns, answering every datagram with
// name, so a client can tell which real server a datagram reached.
func startUDPNamer(t *testing.T, ns *testnet.NS, addr netip.AddrPort, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", addr.String())
		return err
	}); err != nil {
		t.Fatalf("udp on %s in %s: %v", addr, name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Logf("udp namer %s: %v", name, err)
				}
				return
			}
			_, _ = pc.WriteTo([]byte(name), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

// askAll sends n datagrams from one client socket, one at a time, and
// returns the name each answer carried. A datagram lost under load is
// sent again (a few tries); each try is a datagram of its own to the
// director, so only answers are counted, never tries.
func askAll(t *testing.T, lab *testnet.Lab, port uint16, n int) []string {
	t.Helper()
	var conn *net.UDPConn
	if err := lab.Client.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.VIP, port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got []string
	buf := make([]byte, 2048)
	for i := range n {
		var answer string
		for try := 0; try < 5 && answer == ""; try++ {
			if _, err := conn.Write([]byte("q")); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			if k, err := conn.Read(buf); err == nil {
				answer = string(buf[:k])
			}
		}
		if answer == "" {
			t.Fatalf("datagram %d: no answer in 5 tries", i)
		}
		got = append(got, answer)
	}
	return got
}

func distinct(names []string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		m[n]++
	}
	return m
}

// TestOnePacketEndToEnd: a real UDP client's datagrams from one socket,
// through the daemon on its veth lab (DR, rr over three real servers),
// reach one real server without -o, and every real server with -o, set
// and cleared by afvsadm -E while the daemon runs. A socket that made a
// connection before -o keeps it (IPVS's conn_in_get finds it first), so
// each phase uses a fresh socket, as the kernel's behaviour asks.
func TestOnePacketEndToEnd(t *testing.T) {
	const port = 5353
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Scheduler: "rr", Weights: []int{1, 1, 1}, UDPPort: port})
	for i, ns := range lab.Reals {
		startUDPNamer(t, ns, netip.AddrPortFrom(lab.VIP, port), lab.Names[i])
	}
	svc := netip.AddrPortFrom(lab.VIP, port).String()

	before := askAll(t, lab, port, 6)
	if m := distinct(before); len(m) != 1 {
		t.Fatalf("without -o one socket's datagrams reached %v, want one real server", m)
	}

	mustAfvsadm(t, lab, "-E", "-u", svc, "-s", "rr", "-o")
	if list := mustAfvsadm(t, lab, "-L", "-n"); !strings.Contains(list, "UDP  "+svc+" rr ops\n") {
		t.Fatalf("-L -n after -E -o:\n%s", list)
	}
	if saved := mustAfvsadm(t, lab, "-S", "-n"); !strings.Contains(saved, "-A -u "+svc+" -s rr -o\n") {
		t.Fatalf("-S -n after -E -o:\n%s", saved)
	}
	with := askAll(t, lab, port, 9)
	if m := distinct(with); len(m) != 3 {
		t.Fatalf("with -o one socket's datagrams reached %v, want all three real servers", m)
	}
	// The old socket's connection is the only one left; -o made none.
	if conns := mustAfvsadm(t, lab, "-L", "-n", "-c"); strings.Count(conns, "\nUDP ") != 1 {
		t.Errorf("-L -n -c with -o on:\n%s", conns)
	}

	mustAfvsadm(t, lab, "-E", "-u", svc, "-s", "rr")
	after := askAll(t, lab, port, 6)
	if m := distinct(after); len(m) != 1 {
		t.Fatalf("after -E without -o one socket's datagrams reached %v, want one real server", m)
	}
	t.Logf("without -o %v; with -o %v; -o off again %v", distinct(before), distinct(with), distinct(after))
}
