package sim

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// format renders a packet event in the trace format, canonically.
func format(ev *Event) string {
	proto, flags := "tcp", ""
	if ev.Proto == 17 {
		proto, flags = "udp", "-"
	}
	for _, f := range []struct {
		bit uint8
		c   string
	}{{0x02, "S"}, {0x10, "A"}, {0x01, "F"}, {0x04, "R"}} {
		if ev.Flags&f.bit != 0 {
			flags += f.c
		}
	}
	if ev.Reply {
		flags = "<" + flags
	}
	return fmt.Sprintf("%d,%s,%s,%d,%s,%d,%s", ev.TimeMS, proto, ev.Client, ev.CPort, ev.VIP, ev.VPort, flags)
}

// FuzzParseEvent: no input panics; an accepted packet line has a valid
// field set, agrees with netip on the addresses, and its canonical form
// parses back to the same event.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		"0,tcp,198.18.64.1,40000,198.19.0.1,80,S",
		"12,udp,198.18.64.1,53,198.19.0.1,53,-",
		"5,tcp,198.18.64.1,40000,198.19.0.1,80,FA",
		"5, tcp ,198.18.64.1, 1 ,198.19.0.1,65535,RASF",
		"7,admin,-e -t 198.19.0.1:80 -r 198.18.1.2:80 -w 0",
		"7,admin,-E -t 198.19.0.1:80 -s sh -b sh-fallback,sh-port",
		"1,tcp,198.18.064.1,1,198.19.0.1,80,S",
		"1,tcp,256.1.1.1,1,198.19.0.1,80,S",
		"999999999999999,tcp,1.2.3.4,1,5.6.7.8,9,A",
		",,,,,,",
		"1,tcp,1.2.3.4,1,5.6.7.8,9,S,",
		"3,tcp,2001:2:0:64::1,40000,2001:2::1,80,S",
		"3,udp,::ffff:198.18.0.1,53,2001:2::1,53,-",
		"3,tcp,2001:2::1.2.3.4,1,::,80,A",
		"3,tcp,1:2:3:4:5:6:7:8,1,2001:2::1,80,<SA",
		"3,tcp,2001:2::1,1,198.19.0.1,80,S",
		"3,tcp,fe80::1%eth0,1,2001:2::1,80,S",
		"3,tcp,2001:2:::1,1,2001:2::1,80,S",
		"3,tcp,2001:00002::1,1,2001:2::1,80,S",
		"3,tcp,1:2:3:4:5:6:7:8:9,1,2001:2::1,80,S",
		"3,tcp,::1.2.3.4:5,1,2001:2::1,80,S",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var ev Event
		err := parseEvent([]byte(line), 1, &ev)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "trace line 1: ") {
				t.Fatalf("error without the line: %v", err)
			}
			return
		}
		if ev.TimeMS < 0 {
			t.Fatalf("negative time from %q", line)
		}
		if ev.Admin != "" {
			return
		}
		fields := strings.Split(line, ",")
		for i, j := range []int{2, 4} {
			a, perr := netip.ParseAddr(strings.TrimSpace(fields[j]))
			got := [2]netip.Addr{ev.Client, ev.VIP}[i]
			if perr != nil || a != got {
				t.Fatalf("%q: address %q parsed as %v; netip says %v, %v", line, fields[j], got, a, perr)
			}
		}
		if ev.Client.Is6() != ev.VIP.Is6() {
			t.Fatalf("%q: accepted a client and a VIP of two families", line)
		}
		if ev.CPort == 0 || ev.VPort == 0 || (ev.Proto == 6) == (ev.Flags == 0) {
			t.Fatalf("%q: accepted %+v", line, ev)
		}
		var back Event
		if err := parseEvent([]byte(format(&ev)), 1, &back); err != nil || back != ev {
			t.Fatalf("%q: canonical %q parses to %+v, %v", line, format(&ev), back, err)
		}
	})
}

// FuzzParseAddr: the trace's allocation-free address parser accepts
// exactly what netip.ParseAddr accepts, zones aside, with the same result.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"198.18.0.1", "2001:2::1", "::", "::1", "1::", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "2001:2::1.2.3.4", "fe80::1%eth0", "1:::2", ":1::", "1::2::3",
		"12345::", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "ABCD:ef01::", "0000:0000::0", "1.2.3.04", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAddr([]byte(s))
		want, err := netip.ParseAddr(s)
		if err == nil && want.Zone() != "" {
			err = fmt.Errorf("zone")
		}
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("%q: parseAddr %v, %v; netip %v, %v", s, got, ok, want, err)
		}
	})
}
