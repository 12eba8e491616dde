package control_test

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/ipvsadm"
	"github.com/afvs/afvs/vs"
)

// TestListConnFwmarkTemplate: ip_vs_sched_persist makes a firewall-mark
// service's template with protocol IPPROTO_IP, which -L -c prints as "IP"
// (ip_vs_proto_name), with the mark as its virtual address.
func TestListConnFwmarkTemplate(t *testing.T) {
	s := controltest.Serve(t)
	vip := netip.MustParseAddr("198.19.0.1")
	err := s.Server.Update(func(tb *vs.Table) error {
		tb.Marks = []vs.Mark{{Mark: 7, Matches: []vs.Match{{Proto: vs.TCP, Addr: vip, PortLo: 80, PortHi: 80}}}}
		return tb.AddService(vs.Service{Key: vs.Key{FWMark: 7}, Sched: "rr", Persistent: true, Timeout: 360,
			Reals: []vs.Real{{Addr: netip.MustParseAddr("198.18.0.11"), Weight: 1}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Director.Feed(frame(t, 1000, true, 0))
	snap, err := s.Client().IpvsadmSnapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ipvsadm.Parse(strings.Fields("-L -n -c"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := snap.Write(&b, c); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	tmpl := regexp.MustCompile(`(?m)^IP  \d\d:\d\d  NONE        198\.18\.0\.10:0 +0\.0\.0\.7:0 +198\.18\.0\.11:0$`)
	if !tmpl.MatchString(out) {
		t.Errorf("-L -n -c lacks the template as IP 198.18.0.10:0 0.0.0.7:0 198.18.0.11:0:\n%s", out)
	}
	if !strings.Contains(out, "\nTCP ") || strings.Contains(out, "?") {
		t.Errorf("-L -n -c: the connection should be TCP and nothing unnamed:\n%s", out)
	}
}
