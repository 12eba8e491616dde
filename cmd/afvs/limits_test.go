package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/afvs/afvs/vs"
)

// TestCheckLimitsNameTheKey: every size limit is refused by afvs check,
// naming the key, instead of failing later in the dataplane.
func TestCheckLimitsNameTheKey(t *testing.T) {
	var many strings.Builder
	many.WriteString("interfaces: [eth0]\nservices:\n")
	for i := range vs.MaxServices + 1 {
		fmt.Fprintf(&many, "  - {proto: tcp, address: 198.19.%d.%d, port: 80, scheduler: rr}\n", i/256, i%256)
	}
	var reals strings.Builder
	reals.WriteString("interfaces: [eth0]\nservices:\n")
	for s := range 2 {
		fmt.Fprintf(&reals, "  - proto: tcp\n    address: 198.19.0.%d\n    port: 80\n    reals:\n", s+1)
		for i := range vs.MaxDests/2 + s {
			fmt.Fprintf(&reals, "      - {address: 198.18.%d.%d}\n", i/256, i%256)
		}
	}
	long := "/run/" + strings.Repeat("a", 108-len("/run/")) // 108 bytes: one too many
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"services", many.String(), []string{"services: 1025 services", "more than 1024"}},
		{"real servers", reals.String(), []string{"services: 8193 real servers", "more than 8192"}},
		{"socket path", "interfaces: [eth0]\ncontrol: {socket: " + long + "}\n", []string{"control.socket", "108 bytes", "at most 107"}},
		{"mark keys", "interfaces: [eth0]\nmarks: [{mark: 1, matches: [{proto: tcp, address: 198.19.0.1, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.1, ports: 1-65535}, {proto: tcp, address: 198.19.0.2, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.2, ports: 1-65535}, {proto: tcp, address: 198.19.0.3, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.3, ports: 1-65535}, {proto: tcp, address: 198.19.0.4, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.4, ports: 1-65535}, {proto: tcp, address: 198.19.0.5, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.5, ports: 1-65535}, {proto: tcp, address: 198.19.0.6, ports: 1-65535, }, " +
			"{proto: udp, address: 198.19.0.6, ports: 1-65535}, {proto: tcp, address: 198.19.0.7, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.7, ports: 1-65535}, {proto: tcp, address: 198.19.0.8, ports: 1-65535}, " +
			"{proto: udp, address: 198.19.0.8, ports: 1-65535}, {proto: tcp, address: 198.19.0.9, ports: 1-20}]}]\n",
			[]string{"marks[0].matches", "1048580 (address, protocol, port) keys", "more than 1048576"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runCheck([]string{"--config", writeConfig(t, "limits.yaml", tc.text)})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// At the limits everything passes: the checks are not off by one.
	exact := strings.Replace(reals.String(), "      - {address: 198.18.16.0}\n", "", 1)
	if exact == reals.String() {
		t.Fatal("fixture: the last real server was not found")
	}
	if err := runCheck([]string{"--config", writeConfig(t, "exact.yaml", exact)}); err != nil {
		t.Errorf("%d real servers: %v", vs.MaxDests, err)
	}
	if err := runCheck([]string{"--config", writeConfig(t, "sock.yaml", "interfaces: [eth0]\ncontrol: {socket: "+long[:107]+"}\n")}); err != nil {
		t.Errorf("a 107-byte socket path: %v", err)
	}
}
