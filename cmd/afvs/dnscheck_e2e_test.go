package main

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/afvs/afvs/internal/testnet"
)

// startDNSServer runs a DNS server on UDP port in ns (every address of
// the namespace) that answers each query with NOERROR and one A record
// while up is set, and says nothing while it is clear. asked counts the
// queries for www.example.test. A.
func startDNSServer(t *testing.T, ns *testnet.NS, port string, up *atomic.Bool, asked *atomic.Int64) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp4", "0.0.0.0:"+port)
		return err
	}); err != nil {
		t.Fatalf("dns server in %s: %v", ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Logf("dns server %s: %v", ns.Name, err)
				}
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			if qq := q.Questions[0]; qq.Name.String() == "www.example.test." && qq.Type == dnsmessage.TypeA {
				asked.Add(1)
			}
			if !up.Load() {
				continue
			}
			r := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true, RecursionDesired: q.RecursionDesired}, Questions: q.Questions,
				Answers: []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Questions[0].Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					Body: &dnsmessage.AResource{A: [4]byte{198, 18, 0, 53}}}}}
			if b, err := r.Pack(); err == nil {
				_, _ = pc.WriteTo(b, from)
			}
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
}

// TestDNSCheckE2E: a UDP service checked by `type: dns` (keepalived's
// DNS_CHECK) through the daemon: a real server whose DNS server stops
// answering is quiesced in the UDP service only (the TCP service's
// connect check still passes), and gets its weight back when it answers
// again. Silence is what fails it: the UDP probe, which fails only on an
// ICMP port unreachable, would have kept it up.
func TestDNSCheckE2E(t *testing.T) {
	const port = 5353
	lab := newLab(t, testnet.LabOptions{Mode: "dr", Scheduler: "rr", Weights: []int{1, 1, 1}, UDPPort: port, NoDirector: true,
		Health: "{interval: 300ms, timeout: 250ms, rise: 1, fall: 2}"})
	ups := make([]atomic.Bool, len(lab.Reals))
	asked := make([]atomic.Int64, len(lab.Reals))
	for i, ns := range lab.Reals {
		ups[i].Store(true)
		startDNSServer(t, ns, "5353", &ups[i], &asked[i])
	}
	cfg := lab.Config()
	at := strings.LastIndex(cfg, "    forward: dr\n") // the UDP service's
	if at < 0 || !strings.Contains(cfg[:at], "proto: udp") {
		t.Fatalf("no UDP service in the lab's config:\n%s", cfg)
	}
	at += len("    forward: dr\n")
	cfg = cfg[:at] + "    health: {type: dns, dns_type: a, dns_name: www.example.test}\n" + cfg[at:]
	writeLabConfig(t, lab, cfg)
	if err := lab.StartDirector(); err != nil {
		t.Fatal(err)
	}
	weights := func() (tcp, udp map[string]int32) {
		t.Helper()
		svcs, err := lab.Control().Services()
		if err != nil {
			t.Fatal(err)
		}
		tcp, udp = map[string]int32{}, map[string]int32{}
		for _, s := range svcs {
			m := tcp
			if s.Proto == "udp" {
				m = udp
			}
			for _, r := range s.Reals {
				m[r.Address] = r.Weight
			}
		}
		return tcp, udp
	}
	rs := make([]string, len(lab.RealAddrs))
	for i, a := range lab.RealAddrs {
		rs[i] = a.String()
	}
	wait := func(what string, udpWant []int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			tcp, udp := weights()
			ok := true
			for i, a := range rs {
				ok = ok && tcp[a] == 1 && udp[a] == udpWant[i]
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: tcp weights %v, udp weights %v, want udp %v", what, tcp, udp, udpWant)
			}
		}
	}
	// Every server answers: all up, and each was asked what the config says.
	time.Sleep(time.Second)
	wait("all answering", []int32{1, 1, 1})
	for i := range asked {
		if asked[i].Load() == 0 {
			t.Fatalf("%s was never asked www.example.test A", rs[i])
		}
	}
	// rs2 falls silent: quiesced after fall (2) timeouts, in the UDP
	// service only.
	ups[1].Store(false)
	wait("rs2 silent", []int32{1, 0, 1})
	waitLog(t, lab, "real server down: quiesced", 1)
	// It answers again: back with its weight after rise (1) success.
	ups[1].Store(true)
	wait("rs2 answering again", []int32{1, 1, 1})
	waitLog(t, lab, "real server up", 1)
}
