package ipvssync

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// fixture turns a hand-written hex dump into bytes: "#" starts a comment
// that runs to the end of the line, and spaces are ignored.
func fixture(t testing.TB, s string) []byte {
	if t != nil {
		t.Helper()
	}
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		panic("bad fixture: " + err.Error())
	}
	return out
}

var ip = netip.MustParseAddr

// The fixtures below are written from the kernel's struct definitions in
// net/netfilter/ipvs/ip_vs_sync.c: struct ip_vs_sync_mesg, struct
// ip_vs_sync_v4 / ip_vs_sync_v6, and the option layout of ip_vs_sync_conn.

// One IPv4 TCP connection, established, direct routing, no options.
const fixV4 = `
00          # reserved: 0 (a v0 receiver reads nr_conns 0 and drops it)
07          # syncid 7
00 2c       # size: 8 + 36 = 44
01          # nr_conns 1
01          # version 1
00 00       # spare
# struct ip_vs_sync_v4
00          # type 0: IPv4
06          # protocol TCP
00 24       # ver_size: version 0, size 36
00 00 00 03 # flags: IP_VS_CONN_F_DROUTE
00 01       # state IP_VS_TCP_S_ESTABLISHED
c3 50       # cport 50000
00 50       # vport 80
00 50       # dport 80
00 00 00 00 # fwmark 0
00 00 03 84 # timeout 900 s
c6 12 00 64 # caddr 198.18.0.100
c6 13 00 01 # vaddr 198.19.0.1
c6 12 00 0b # daddr 198.18.0.11
`

var connV4 = Conn{
	Protocol: ProtoTCP, Flags: FlagDRoute, State: TCPEstablished,
	CPort: 50000, VPort: 80, DPort: 80, Timeout: 900,
	CAddr: ip("198.18.0.100"), VAddr: ip("198.19.0.1"), DAddr: ip("198.18.0.11"),
}

// Two entries: a connection with the sequence option (62 bytes, so the
// next entry starts after 2 bytes of padding) and the persistence
// template that controls it.
const fixSeqAndTemplate = `
00 07 00 6c 02 01 00 00   # header: syncid 7, size 8+62+2+36 = 108, 2 conns, v1
# entry 1: struct ip_vs_sync_v4
00 06                     # type IPv4, protocol TCP
00 3e                     # ver_size: size 36 + 2 + 24 = 62
00 00 06 02               # flags: IN_SEQ|OUT_SEQ (0x600) | TUNNEL (2)
00 04                     # state IP_VS_TCP_S_FIN_WAIT
9c 40                     # cport 40000
01 bb                     # vport 443
01 bb                     # dport 443
00 00 00 00               # fwmark
00 00 00 78               # timeout 120 s
c6 12 00 65               # caddr 198.18.0.101
c6 13 00 01               # vaddr 198.19.0.1
c6 12 00 0c               # daddr 198.18.0.12
01 18                     # option IPVS_OPT_SEQ_DATA, length 24
01 02 03 04               # in_seq.init_seq
00 00 00 10               # in_seq.delta
00 00 00 08               # in_seq.previous_delta
0a 0b 0c 0d               # out_seq.init_seq
00 00 00 00               # out_seq.delta
00 00 00 00               # out_seq.previous_delta
00 00                     # padding to the next 4-byte boundary (not in size 62)
# entry 2: the template
00 06                     # type IPv4, protocol TCP
00 24                     # size 36
00 00 10 02               # flags: IP_VS_CONN_F_TEMPLATE | TUNNEL
00 01                     # state IP_VS_CTPL_S_ASSURED
00 00                     # cport 0 (a template matches any client port)
01 bb                     # vport 443
01 bb                     # dport 443
00 00 00 00               # fwmark
00 00 01 2c               # timeout 300 s (the persistence timeout)
c6 12 00 65               # caddr 198.18.0.101
c6 13 00 01               # vaddr
c6 12 00 0c               # daddr
`

var connSeq = Conn{
	Protocol: ProtoTCP, Flags: FlagSeqMask | FlagTunnel, State: TCPFinWait,
	CPort: 40000, VPort: 443, DPort: 443, Timeout: 120,
	CAddr: ip("198.18.0.101"), VAddr: ip("198.19.0.1"), DAddr: ip("198.18.0.12"),
	HasSeq: true, InSeq: Seq{0x01020304, 0x10, 0x08}, OutSeq: Seq{InitSeq: 0x0a0b0c0d},
}

var connTemplate = Conn{
	Protocol: ProtoTCP, Flags: FlagTemplate | FlagTunnel, State: TemplateAssured,
	VPort: 443, DPort: 443, Timeout: 300,
	CAddr: ip("198.18.0.101"), VAddr: ip("198.19.0.1"), DAddr: ip("198.18.0.12"),
}

// A template of the SIP persistence engine: PE data (the Call-ID) and
// the PE name, in the order ip_vs_sync_conn writes them.
const fixPE = `
00 07 00 3c 01 01 00 00   # header: size 8 + 52 = 60, 1 conn
00 11                     # type IPv4, protocol UDP
00 34                     # size 36 + (2+9) + (2+3) = 52
00 00 10 03               # flags: TEMPLATE | DROUTE
00 00                     # state IP_VS_CTPL_S_NONE
00 00                     # cport 0
13 c4                     # vport 5060
13 c4                     # dport 5060
00 00 00 00               # fwmark
00 00 01 68               # timeout 360 s
c6 12 00 66               # caddr 198.18.0.102
c6 13 00 02               # vaddr 198.19.0.2
c6 12 00 0d               # daddr 198.18.0.13
02 09                     # option IPVS_OPT_PE_DATA, length 9
63 61 6c 6c 2d 69 64 2d 31  # "call-id-1"
03 03                     # option IPVS_OPT_PE_NAME, length 3
73 69 70                  # "sip"
`

var connPE = Conn{
	Protocol: ProtoUDP, Flags: FlagTemplate | FlagDRoute, State: TemplateNone,
	VPort: 5060, DPort: 5060, Timeout: 360,
	CAddr: ip("198.18.0.102"), VAddr: ip("198.19.0.2"), DAddr: ip("198.18.0.13"),
	PEData: []byte("call-id-1"), PEName: []byte("sip"),
}

// An IPv6 UDP connection, tunnelled, inactive.
const fixV6 = `
00 00 00 50 01 01 00 00   # header: syncid 0, size 8 + 72 = 80, 1 conn
# struct ip_vs_sync_v6
01                        # type: STYPE_F_INET6
11                        # protocol UDP
00 48                     # size 72
00 00 01 02               # flags: INACTIVE | TUNNEL
00 00                     # state IP_VS_UDP_S_NORMAL
d4 31                     # cport 54321
00 35                     # vport 53
00 35                     # dport 53
00 00 00 00               # fwmark
00 00 01 2c               # timeout 300 s
20 01 00 02 00 00 00 00 00 00 00 00 00 00 01 00   # caddr 2001:2::100
20 01 00 02 00 00 00 00 00 00 00 00 00 00 00 01   # vaddr 2001:2::1
20 01 00 02 00 00 00 00 00 00 00 00 00 00 00 11   # daddr 2001:2::11
`

var connV6 = Conn{
	Protocol: ProtoUDP, Flags: FlagInactive | FlagTunnel, State: 0,
	CPort: 54321, VPort: 53, DPort: 53, Timeout: 300,
	CAddr: ip("2001:2::100"), VAddr: ip("2001:2::1"), DAddr: ip("2001:2::11"),
}

// A connection of a firewall-mark service (-f 7).
const fixFWMark = `
00 01 00 2c 01 01 00 00   # header: syncid 1, size 44, 1 conn
00 06 00 24               # IPv4, TCP, size 36
00 00 00 03               # flags: DROUTE
00 06                     # state IP_VS_TCP_S_CLOSE
ea 60                     # cport 60000
1f 40                     # vport 8000
1f 40                     # dport 8000
00 00 00 07               # fwmark 7
00 00 00 0a               # timeout 10 s
c6 12 00 67 c6 13 00 01 c6 12 00 0b   # caddr, vaddr, daddr
`

var connFWMark = Conn{
	Protocol: ProtoTCP, Flags: FlagDRoute, State: TCPClose,
	CPort: 60000, VPort: 8000, DPort: 8000, FWMark: 7, Timeout: 10,
	CAddr: ip("198.18.0.103"), VAddr: ip("198.19.0.1"), DAddr: ip("198.18.0.11"),
}
