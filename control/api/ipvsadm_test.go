package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// ipv6Services is what the daemon sends for an IPv6 service with a /64
// persistence netmask, an IPv6 DR real and an IPv4 tunnel real, and an IPv6
// firewall-mark service: the API's contract for when IPv6 is forwarded.
var ipv6Services = []Service{
	{Proto: "tcp", Address: "2001:2::10", Port: 443, Scheduler: "mh", SchedFlags: []string{"mh-port"}, Persistent: true, Timeout: 600,
		Netmask: "ffff:ffff:ffff:ffff::", Reals: []Real{
			{Address: "2001:2::1:1", Port: 443, Forward: "Route", Weight: 1},
			{Address: "198.18.4.1", Port: 443, Forward: "Tunnel", Weight: 5},
		}},
	{Proto: "fwm", FWMark: 9, IPv6: true, Scheduler: "wrr", Reals: []Real{}},
}

func ipvsadmMux(svcs []Service) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Status{Table: TableStatus{Capacity: 4096}})
	})
	mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Timeouts{TCP: 900, TCPFin: 120, UDP: 300})
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(svcs)
	})
	return mux
}

// TestIpvsadmSnapshotIPv6: IPv6 services from the daemon turn into
// ipvsadm's model so that -S prints them as ipvsadm 1.31 does (the lines of
// ipvsadm/testdata/save.golden for the same services): the netmask as a
// prefix length (-M 64), bracketed addresses, and -f 9 -6.
func TestIpvsadmSnapshotIPv6(t *testing.T) {
	c := NewClient(serve(t, ipvsadmMux(ipv6Services)))
	snap, err := c.IpvsadmSnapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.WriteSave(&b); err != nil {
		t.Fatal(err)
	}
	want := "-A -t [2001:2::10]:443 -s mh -p 600 -M 64 -b mh-port\n" +
		"-a -t [2001:2::10]:443 -r 198.18.4.1:443 -i -w 5 --tun-type ipip\n" +
		"-a -t [2001:2::10]:443 -r [2001:2::1:1]:443 -g -w 1\n" +
		"-A -f 9 -6 -s wrr\n"
	if b.String() != want {
		t.Errorf("-S:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestIpvsadmSnapshotBadNetmask: a netmask of the wrong family or not
// contiguous is an error naming it, not a silent /0.
func TestIpvsadmSnapshotBadNetmask(t *testing.T) {
	for _, m := range []string{"255.255.255.0", "ffff::ffff"} {
		svcs := []Service{ipv6Services[0]}
		svcs[0].Netmask = m
		c := NewClient(serve(t, ipvsadmMux(svcs)))
		if _, err := c.IpvsadmSnapshot(false); err == nil || !strings.Contains(err.Error(), m) {
			t.Errorf("netmask %s: %v", m, err)
		}
	}
}
