package control

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSTypes are the query types a DNS check may ask for, by name: those
// keepalived's DNS_CHECK knows.
var DNSTypes = map[string]dnsmessage.Type{
	"A":     dnsmessage.TypeA,
	"NS":    dnsmessage.TypeNS,
	"CNAME": dnsmessage.TypeCNAME,
	"SOA":   dnsmessage.TypeSOA,
	"MX":    dnsmessage.TypeMX,
	"TXT":   dnsmessage.TypeTXT,
	"AAAA":  dnsmessage.TypeAAAA,
}

// DNSCheck returns keepalived's DNS_CHECK: one query over UDP for name
// (made fully qualified; "." is the root) with type qtype (a key of
// DNSTypes, in either case), class IN, a random ID and recursion
// desired. The real server is up when a response with the query's ID
// comes back with RCODE 0 (NOERROR), whatever its answer count; a
// response with any other RCODE (NXDOMAIN, SERVFAIL, REFUSED, ...) fails
// the check at once. Datagrams that are not a DNS header, carry another
// ID or are not responses are ignored, as a stray datagram on the socket
// might be, and the check goes on waiting: only silence until the timeout
// or an ICMP error (port unreachable) fails it otherwise.
func DNSCheck(qtype, name string) (func(ctx context.Context, addr netip.AddrPort) error, error) {
	t, ok := DNSTypes[strings.ToUpper(qtype)]
	if !ok {
		return nil, fmt.Errorf("DNS check: query type %q: must be one of A, NS, CNAME, SOA, MX, TXT or AAAA", qtype)
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, fmt.Errorf("DNS check: name %q: %w", name, err)
	}
	q := dnsmessage.Question{Name: qname, Type: t, Class: dnsmessage.ClassINET}
	// Pack once to refuse what cannot be sent (an empty label, a label
	// above 63 bytes) now rather than at every check.
	if _, err := dnsQuery(0, q); err != nil {
		return nil, fmt.Errorf("DNS check: name %q: %w", name, err)
	}
	return func(ctx context.Context, addr netip.AddrPort) error {
		return dnsCheck(ctx, addr, q)
	}, nil
}

// dnsQuery packs a query for q with id.
func dnsQuery(id uint16, q dnsmessage.Question) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 64), dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	return b.Finish()
}

func dnsCheck(ctx context.Context, addr netip.AddrPort, q dnsmessage.Question) error {
	id := uint16(rand.Uint32())
	msg, err := dnsQuery(id, q)
	if err != nil {
		return err
	}
	c, err := dialCheck(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("DNS %s: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("DNS %s: no answer to %s %s before the timeout", addr, q.Type, q.Name)
			}
			return fmt.Errorf("DNS %s: %w", addr, err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || h.ID != id || !h.Response {
			continue // not the answer to this query: wait on
		}
		if h.RCode != dnsmessage.RCodeSuccess {
			return fmt.Errorf("DNS %s: %s %s answered %s", addr, q.Type, q.Name, h.RCode)
		}
		return nil
	}
}
