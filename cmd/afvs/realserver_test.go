package main

import (
	"strings"
	"testing"
)

// TestRealServerNATFlags: --mode nat takes no VIP, --gateway only with
// nat, a unicast address and one per family, a VIP is a unicast address of either
// family and an IPv6 one cannot use the kernel's IPIP decapsulation; each
// refusal names the flag and the rule before anything on the host changes.
func TestRealServerNATFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "nat", "--vip", "198.19.0.1"}, "needs no VIP"},
		{[]string{"--mode", "dr", "--vip", "198.19.0.1", "--gateway", "198.18.2.1"}, "only for --mode nat"},
		{[]string{"--mode", "nat", "--gateway", "fe80::1"}, `--gateway "fe80::1": must be a unicast IPv4 or IPv6 address`},
		{[]string{"--mode", "nat", "--gateway", "director"}, `--gateway "director"`},
		{[]string{"--mode", "nat", "--gateway", "198.18.2.1", "--gateway", "198.18.2.2"}, "--gateway 198.18.2.2: 198.18.2.1 is the IPv4 gateway already"},
		{[]string{"--mode", "nat", "--gateway", "2001:2::1", "--gateway", "2001:2::3"}, "--gateway 2001:2::3: 2001:2::1 is the IPv6 gateway already"},
		{[]string{"--mode", "masq"}, "must be dr, tun or nat"},
		{[]string{"--mode", "dr"}, "--vip is required"},
		{[]string{"--mode", "dr", "--vip", "fe80::1"}, `--vip "fe80::1": must be a unicast IPv4 or IPv6 address`},
		{[]string{"--mode", "dr", "--vip", "ff02::1"}, `--vip "ff02::1": must be a unicast IPv4 or IPv6 address`},
		{[]string{"--mode", "dr", "--vip", "::ffff:198.19.0.1"}, `--vip "::ffff:198.19.0.1": must be a unicast IPv4 or IPv6 address`},
		{[]string{"--mode", "tun", "--vip", "2001:2:0:1::1", "--decap", "kernel"}, "tunl0 decapsulates IPIP only; an IPv6 VIP needs --decap xdp"},
	} {
		err := runRealServer(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("afvs realserver %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
