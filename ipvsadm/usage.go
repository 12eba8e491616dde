package ipvsadm

import (
	"fmt"
	"io"
	"strings"
)

// usageText is the -h text. The synopsis lines match ipvsadm's so that
// operators recognise them; the rest is afvs's own wording and says which
// of ipvsadm's features afvs does not carry.
const usageText = `Usage:
  %[1]s -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  %[1]s -D virtual-service
  %[1]s -C
  %[1]s -R
  %[1]s -S [-n]
  %[1]s -a|e virtual-service -r server-address [options]
  %[1]s -d virtual-service -r server-address
  %[1]s -L|l [virtual-service] [options]
  %[1]s -Z [virtual-service]
  %[1]s --set tcp tcpfin udp
  %[1]s --start-daemon {master|backup} [daemon-options]
  %[1]s --stop-daemon {master|backup}
  %[1]s -h

Commands (long or short form):
  --add-service     -A        create a virtual service
  --edit-service    -E        change a virtual service's options
  --delete-service  -D        remove a virtual service and its real servers
  --clear           -C        remove every virtual service
  --restore         -R        read commands in --save format from stdin
  --save            -S        print the table as commands for --restore
  --add-server      -a        add a real server to a virtual service
  --edit-server     -e        change a real server's options
  --delete-server   -d        remove a real server
  --list            -L|-l     show the table
  --zero            -Z        reset the counters of one or all services
  --set tcp tcpfin udp        set the connection timeouts in seconds
  --start-daemon              start a connection sync daemon
  --stop-daemon               stop a connection sync daemon
  --help            -h        show this text
  --version         -v        show the program version

virtual-service, one of:
  --tcp-service|-t  service-address   address[:port]; IPv6 as [address]:port
  --udp-service|-u  service-address   address[:port]; IPv6 as [address]:port
  --fwmark-service|-f fwmark          a firewall mark, 1 or more

Options:
  --ipv6         -6                   the firewall mark service is IPv6
  --scheduler    -s scheduler         scheduling algorithm, wlc if not given
  --persistent   -p [timeout]         keep a client on one real server for
                                      timeout seconds (360 if not given)
  --netmask      -M netmask           group clients by this mask for
                                      persistence (prefix length for IPv6)
  --sched-flags  -b flags             scheduler flags, comma separated
  --ops          -o                   one-packet scheduling (UDP)
  --real-server  -r server-address    address[:port] of the real server
  --gatewaying   -g                   direct routing, the default
  --ipip         -i                   IP-in-IP tunnelling
  --masquerading -m                   NAT
  --tun-type     type                 ipip (default), gue or gre; afvs
                                      forwards with ipip only
  --tun-port     port                 GUE destination port
  --tun-nocsum                        GUE without checksum
  --tun-csum                          GUE with checksum
  --tun-remcsum                       GUE with remote checksum offload
  --weight       -w weight            share of new connections, 0..65535
  --u-threshold  -x uthreshold        stop sending connections above this
  --l-threshold  -y lthreshold        resume sending connections below this
  --connection   -c                   list connections
  --timeout                           list the timeouts (tcp tcpfin udp)
  --stats                             list packet and byte counters
  --rate                              list rates
  --exact                             print counters in full
  --thresholds                        list thresholds
  --persistent-conn                   list persistent connections
  --tun-info                          list tunnel settings
  --daemon                            list the running sync daemons
  --nosort                            keep services and servers unsorted
  --sort                              accepted for compatibility; sorting is the default
  --numeric      -n                   print numbers, not names (afvs always does)

Daemon options:
  --syncid sid                        syncid for connection sync (default 0: a backup takes any)
  --sync-maxlen length                largest sync message (default: from the MTU, 1472)
  --mcast-interface interface         interface for connection sync (default eth0)
  --mcast-group address               IPv4 or IPv6 group (default 224.0.0.81)
  --mcast-port port                   UDP port (default 8848)
  --mcast-ttl ttl                     multicast TTL (default 1)

Not supported by afvs: --pe and --sctp-service. Connection sync runs in
the daemon (IPVS sync protocol version 1, on an IPv4 or IPv6 group).
`

// Usage writes the -h text for the program named prog.
func Usage(w io.Writer, prog string) error {
	prog = strings.TrimSpace(prog)
	if prog == "" {
		prog = "afvsadm"
	}
	_, err := fmt.Fprintf(w, usageText, prog)
	return err
}
