package sim

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/afvs/afvs/internal/header"
)

// Event is one parsed trace line.
type Event struct {
	Line   int   // 1-based line number in the trace
	TimeMS int64 // time_ms
	// Admin holds the ipvsadm arguments of an admin event; empty for a
	// packet event.
	Admin string
	Proto uint8 // header.ProtocolTCP or header.ProtocolUDP
	// Client and VIP are of one family: both IPv4 or both IPv6.
	Client netip.Addr
	CPort  uint16
	VIP    netip.Addr
	VPort  uint16
	Flags  uint8 // TCP flag bits (header.TCPFlag*); 0 for UDP
	// Reply: the flow's real server sent this packet back to the client
	// (flags written with a leading '<', "<SA" or "<-"): it passes the
	// director only for a VS/NAT real server.
	Reply bool
}

// parseEvent parses one non-comment, non-blank trace line. It does not
// allocate for packet events, so a long trace costs only its processing.
func parseEvent(line []byte, n int, ev *Event) error {
	*ev = Event{Line: n}
	var f [7][]byte
	nf := 0
	rest := line
	for nf < 7 {
		j := bytes.IndexByte(rest, ',')
		if j < 0 {
			f[nf] = rest
			nf++
			rest = nil
			break
		}
		f[nf], rest = rest[:j], rest[j+1:]
		nf++
		if nf == 2 && string(bytes.TrimSpace(f[1])) == "admin" {
			break // the ipvsadm arguments may hold commas (-b sh-fallback,sh-port)
		}
	}
	t, ok := parseTime(bytes.TrimSpace(f[0]))
	if !ok {
		return fmt.Errorf("trace line %d: time_ms %q: must be a non-negative integer", n, f[0])
	}
	ev.TimeMS = t
	proto := bytes.TrimSpace(f[1])
	if string(proto) == "admin" {
		args := bytes.TrimSpace(rest)
		if len(args) == 0 {
			return fmt.Errorf("trace line %d: admin event without ipvsadm arguments", n)
		}
		ev.Admin = string(args)
		return nil
	}
	if nf != 7 || rest != nil {
		return fmt.Errorf("trace line %d: %d fields: want 7 (time_ms,proto,client_ip,client_port,vip,vport,flags)", n, fieldCount(line))
	}
	switch string(proto) {
	case "tcp":
		ev.Proto = header.ProtocolTCP
	case "udp":
		ev.Proto = header.ProtocolUDP
	default:
		return fmt.Errorf("trace line %d: proto %q: must be tcp, udp or admin", n, proto)
	}
	if ev.Client, ok = parseAddr(bytes.TrimSpace(f[2])); !ok {
		return fmt.Errorf("trace line %d: client_ip %q: must be an IPv4 address (dotted quad) or an IPv6 address (without brackets or zone)", n, f[2])
	}
	if ev.CPort, ok = parsePort(bytes.TrimSpace(f[3])); !ok || ev.CPort == 0 {
		return fmt.Errorf("trace line %d: client_port %q: must be 1..65535", n, f[3])
	}
	if ev.VIP, ok = parseAddr(bytes.TrimSpace(f[4])); !ok {
		return fmt.Errorf("trace line %d: vip %q: must be an IPv4 address (dotted quad) or an IPv6 address (without brackets or zone)", n, f[4])
	}
	if ev.Client.Is6() != ev.VIP.Is6() {
		return fmt.Errorf("trace line %d: client_ip %s and vip %s: must be of one family (an IPv4 client cannot reach an IPv6 VIP)", n, ev.Client, ev.VIP)
	}
	if ev.VPort, ok = parsePort(bytes.TrimSpace(f[5])); !ok || ev.VPort == 0 {
		return fmt.Errorf("trace line %d: vport %q: must be 1..65535", n, f[5])
	}
	flags := bytes.TrimSpace(f[6])
	if len(flags) > 0 && flags[0] == '<' {
		ev.Reply, flags = true, flags[1:]
	}
	if ev.Proto == header.ProtocolUDP {
		if string(flags) != "-" {
			return fmt.Errorf("trace line %d: flags %q: must be - for udp", n, flags)
		}
		return nil
	}
	if ev.Flags, ok = parseTCPFlags(flags); !ok {
		return fmt.Errorf("trace line %d: flags %q: must be one or more of S, A, F, R, each at most once, for tcp (a leading < marks the real server's reply)", n, flags)
	}
	return nil
}

func fieldCount(line []byte) int { return bytes.Count(line, []byte{','}) + 1 }

func parseTCPFlags(b []byte) (uint8, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var f uint8
	for _, c := range b {
		var bit uint8
		switch c {
		case 'S':
			bit = header.TCPFlagSYN
		case 'A':
			bit = header.TCPFlagACK
		case 'F':
			bit = header.TCPFlagFIN
		case 'R':
			bit = header.TCPFlagRST
		default:
			return 0, false
		}
		if f&bit != 0 {
			return 0, false
		}
		f |= bit
	}
	return f, true
}

// parseAddr reads an IPv4 or IPv6 address as netip.ParseAddr does, zones
// refused, without allocating: an address with a colon is IPv6.
func parseAddr(b []byte) (netip.Addr, bool) {
	if bytes.IndexByte(b, ':') >= 0 {
		a, ok := parseIPv6(b)
		return netip.AddrFrom16(a), ok
	}
	a, ok := parseIPv4(b)
	return netip.AddrFrom4(a), ok
}

// parseIPv6 accepts what netip.ParseAddr accepts as an IPv6 address
// without a zone: up to eight groups of one to four hex digits, at most
// one "::" standing for one or more zero groups, and a dotted-quad IPv4
// address in place of the last two groups.
func parseIPv6(s []byte) ([16]byte, bool) {
	var a [16]byte
	ellipsis := -1 // where "::" stands, in bytes of a
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis, s = 0, s[2:]
		if len(s) == 0 {
			return a, true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for ; off < len(s); off++ {
			c := s[off]
			switch {
			case c >= '0' && c <= '9':
				acc = acc<<4 + int(c-'0')
			case c >= 'a' && c <= 'f':
				acc = acc<<4 + int(c-'a') + 10
			case c >= 'A' && c <= 'F':
				acc = acc<<4 + int(c-'A') + 10
			default:
				goto done
			}
			if off > 3 {
				return a, false // five or more digits
			}
		}
	done:
		if off == 0 {
			return a, false
		}
		if off < len(s) && s[off] == '.' {
			// A dotted quad: the rest of the address, in the last four
			// bytes unless "::" makes room before it.
			if (ellipsis < 0 && i != 12) || i+4 > 16 {
				return a, false
			}
			v4, ok := parseIPv4(s)
			if !ok {
				return a, false
			}
			copy(a[i:], v4[:])
			i, s = i+4, nil
			break
		}
		a[i], a[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return a, false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis >= 0 {
				return a, false // a second "::"
			}
			ellipsis, s = i, s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return a, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return a, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			a[j+n] = a[j]
		}
		for j := ellipsis + n - 1; j >= ellipsis; j-- {
			a[j] = 0
		}
	} else if ellipsis >= 0 {
		return a, false // "::" must stand for at least one group
	}
	return a, true
}

// parseIPv4 accepts exactly four decimal octets without leading zeros, as
// netip.ParseAddr does, without allocating.
func parseIPv4(b []byte) ([4]byte, bool) {
	var a [4]byte
	for i := 0; i < 4; i++ {
		if i > 0 {
			if len(b) == 0 || b[0] != '.' {
				return a, false
			}
			b = b[1:]
		}
		v, n := 0, 0
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			if n > 0 && b[0] == '0' {
				return a, false
			}
			v = v*10 + int(b[n]-'0')
			n++
			if v > 255 {
				return a, false
			}
		}
		if n == 0 {
			return a, false
		}
		a[i] = byte(v)
		b = b[n:]
	}
	return a, len(b) == 0
}

func parsePort(b []byte) (uint16, bool) {
	if len(b) == 0 || len(b) > 5 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, false
	}
	return uint16(v), true
}

// parseTime reads a non-negative decimal time_ms; 15 digits is over 30000
// years, and the bound keeps the value far from overflow.
func parseTime(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
