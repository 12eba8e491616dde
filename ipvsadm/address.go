package ipvsadm

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// portNames maps the service names most often found in LVS scripts to
// their ports. ipvsadm asks getservbyname; afvsadm must not read files
// behind the caller's back, so it knows this fixed set and nothing else.
var portNames = map[string]uint16{
	"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
	"http": 80, "www": 80, "pop3": 110, "ntp": 123, "imap": 143,
	"snmp": 161, "ldap": 389, "https": 443, "submission": 587,
	"ldaps": 636, "imaps": 993, "pop3s": 995, "mysql": 3306,
	"postgresql": 5432, "http-alt": 8080,
}

// addrPort is a parsed host[:port] argument.
type addrPort struct {
	addr    netip.Addr
	port    uint16
	hasPort bool
}

// parseAddrPort parses ipvsadm's service-address and server-address
// syntax: "a.b.c.d", "a.b.c.d:port", a bare IPv6 address, or
// "[ipv6]:port". The port may be a number or a well-known service name.
func parseAddrPort(s string) (addrPort, error) {
	var r addrPort
	if s == "" {
		return r, errors.New("empty address")
	}
	if strings.Trim(s, "0123456789") == "" {
		return r, errors.New("a bare number is not an address")
	}
	var host, port string
	havePort := false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return r, errors.New("missing ']' after IPv6 address")
		}
		host, port = s[1:end], s[end+1:]
		if !strings.HasPrefix(port, ":") {
			return r, errors.New("a bracketed IPv6 address must be followed by :port")
		}
		port, havePort = port[1:], true
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return r, fmt.Errorf("%q is not a numeric IPv6 address", host)
		}
		r.addr = a
	} else if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
		if a.Zone() != "" {
			return r, fmt.Errorf("%q has a zone, which IPVS cannot use", s)
		}
		return addrPort{addr: a}, nil
	} else {
		host = s
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port, havePort = s[:i], s[i+1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return r, fmt.Errorf("%q is not a numeric IPv4 or IPv6 address (host names are not resolved)", host)
		}
		r.addr = a
	}
	if havePort {
		p, err := parsePort(port)
		if err != nil {
			return r, err
		}
		r.port, r.hasPort = p, true
	}
	return r, nil
}

// parsePort accepts 0..65535 or a name from portNames.
func parsePort(s string) (uint16, error) {
	if n, ok := parseDecimal(s, 65535); ok {
		return uint16(n), nil
	}
	if p, ok := portNames[s]; ok {
		return p, nil
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return 0, fmt.Errorf("port %s is not in 0..65535", s)
	}
	return 0, fmt.Errorf("port %q is neither a number in 0..65535 nor a known service name", s)
}

// parseDecimal parses an unsigned decimal number no larger than max.
// strtol would also take a sign and leading blanks; no script needs them.
func parseDecimal(s string, max uint64) (uint64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}

// parseNetmask turns -M's argument into a prefix length: a dotted mask
// for IPv4 services, a length in 1..128 for IPv6 ones.
func parseNetmask(s string, ipv6 bool) (int, error) {
	if ipv6 {
		n, ok := parseDecimal(s, 128)
		if !ok || n < 1 {
			return 0, fmt.Errorf("illegal ipv6 netmask specified: %q is not a prefix length in 1..128", s)
		}
		return int(n), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("illegal virtual server persistent mask specified: %q is not a dotted IPv4 netmask", s)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := bits.LeadingZeros32(^m)
	if ones < 32 && m<<ones != 0 {
		// IPVS masks the client address with it, so a non-contiguous
		// mask would be legal in the kernel; afvs keys persistence by
		// prefix and refuses it rather than silently widening it.
		return 0, fmt.Errorf("illegal virtual server persistent mask specified: %q is not a contiguous netmask", s)
	}
	return ones, nil
}

// maskString prints a prefix length as -M takes it and the listing shows
// it: dotted for IPv4, a number for IPv6.
func maskString(bits int, ipv6 bool) string {
	if ipv6 {
		return strconv.Itoa(bits)
	}
	var m uint32
	bits = min(bits, 32)
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}
