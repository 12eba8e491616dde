#!/bin/bash
# Writes the expected listings for list_test.go. Each line is produced by
# bash's printf from the format strings of ipvsadm 1.31's listing code,
# with the values of fixture() in list_test.go typed in by hand, so the
# Go formatter is checked against ipvsadm's formats rather than itself.
# Run from this directory: ./golden.sh
set -eu

# largenum VALUE EXACT: ipvsadm's print_largenum.
largenum() {
	local v=$1 exact=$2
	if [ "$exact" = 1 ]; then
		local w=9
		if [ ${#v} -gt 8 ]; then w=$(( ${#v} + 1 )); fi
		printf "%*s" "$w" "$v"
	elif [ "$v" -lt 100000000 ]; then printf "%9d" "$v"
	elif [ "$v" -lt 1000000000 ]; then printf "%8dK" $(( v / 1000 ))
	elif [ "$v" -lt 100000000000 ]; then printf "%8dM" $(( v / 1000000 ))
	elif [ "$v" -lt 100000000000000 ]; then printf "%8dG" $(( v / 1000000000 ))
	else printf "%8dT" $(( v / 1000000000000 ))
	fi
}

header() { printf "IP Virtual Server version %d.%d.%d (size=%d)\n" 1 2 1 4096; }

# Service names, in listing order, as print_service_entry builds them.
F=$(printf "%-4s %s" TCP 198.18.0.1:0)
A=$(printf "%-4s %s" TCP 198.19.0.1:80)
B=$(printf "%-4s %s" UDP 198.18.0.53:53)
D=$(printf "%-4s %s" TCP "[2001:2::10]:443")
C=$(printf "FWM  %u" 7)
E=$(printf "FWM  %u IPv6" 9)

normal_title() {
	printf "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
}
dest() { printf "  -> %-28s %-7s %-6d %-10u %-10u\n" "$@"; }

svcA_normal() {
	printf "%s %s" "$A" wlc; printf " persistent %u" 300; printf " mask %s" 255.255.255.0; printf "\n"
	dest 198.18.1.2:80 Route 1 5 7
	dest 198.18.1.3:80 Route 2 12 40
}

{
	header
	normal_title
	printf "%s %s" "$F" wlc; printf " persistent %u" 3600; printf "\n"
	dest 198.18.0.2:0 Route 1 0 0
	svcA_normal
	printf "%s %s" "$B" rr; printf " ops"; printf "\n"
	dest 198.18.2.1:53 Masq 1 0 3
	printf "%s %s" "$D" mh; printf " (%s)" mh-port; printf " persistent %u" 600; printf " mask %i" 64; printf "\n"
	dest 198.18.4.1:443 Tunnel 5 0 0
	dest "[2001:2::1:1]:443" Route 1 2 0
	printf "%s %s" "$C" sh; printf " (%s)" sh-fallback,sh-port; printf "\n"
	dest 198.18.3.1:0 Tunnel 10 1 2
	dest 198.18.3.2:0 Tunnel 0 0 0
	dest 198.18.3.3:0 Local 1 0 0
	printf "%s %s\n" "$E" wrr
} > list.golden

# --nosort keeps the snapshot's order for services and real servers.
{
	header
	normal_title
	printf "%s %s" "$A" wlc; printf " persistent %u" 300; printf " mask %s" 255.255.255.0; printf "\n"
	dest 198.18.1.3:80 Route 2 12 40
	dest 198.18.1.2:80 Route 1 5 7
	printf "%s %s" "$B" rr; printf " ops"; printf "\n"
	dest 198.18.2.1:53 Masq 1 0 3
	printf "%s %s" "$C" sh; printf " (%s)" sh-fallback,sh-port; printf "\n"
	dest 198.18.3.2:0 Tunnel 0 0 0
	dest 198.18.3.1:0 Tunnel 10 1 2
	dest 198.18.3.3:0 Local 1 0 0
	printf "%s %s" "$D" mh; printf " (%s)" mh-port; printf " persistent %u" 600; printf " mask %i" 64; printf "\n"
	dest "[2001:2::1:1]:443" Route 1 2 0
	dest 198.18.4.1:443 Tunnel 5 0 0
	printf "%s %s\n" "$E" wrr
	printf "%s %s" "$F" wlc; printf " persistent %u" 3600; printf "\n"
	dest 198.18.0.2:0 Route 1 0 0
} > nosort.golden

# -L -n -t 198.19.0.1:80: no version header.
{
	normal_title
	svcA_normal
} > service.golden

stats() { # name exact conns inpkts outpkts inbytes outbytes
	local name=$1 ex=$2; shift 2
	printf "%s" "$name"
	for v in "$@"; do largenum "$v" "$ex"; done
	printf "\n"
}
stats_listing() {
	local ex=$1
	header
	printf "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" "Prot LocalAddress:Port" Conns InPkts OutPkts InBytes OutBytes
	stats "$(printf "%-33s" "$F")" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" 198.18.0.2:0)" "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$A")" "$ex" 123 99999999 100000000 1234567890 123456789012345
	stats "$(printf "  -> %-28s" 198.18.1.2:80)" "$ex" 116 99999929 100000000 1234560890 123456789005345
	stats "$(printf "  -> %-28s" 198.18.1.3:80)" "$ex" 7 70 0 7000 0
	stats "$(printf "%-33s" "$B")" "$ex" 9 9 0 5000000000000 0
	stats "$(printf "  -> %-28s" 198.18.2.1:53)" "$ex" 9 9 0 5000000000000 0
	stats "$(printf "%-33s" "$D")" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" 198.18.4.1:443)" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" "[2001:2::1:1]:443")" "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$C")" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" 198.18.3.1:0)" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" 198.18.3.2:0)" "$ex" 0 0 0 0 0
	stats "$(printf "  -> %-28s" 198.18.3.3:0)" "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$E")" "$ex" 0 0 0 0 0
}
stats_listing 0 > stats.golden
stats_listing 1 > stats_exact.golden

# Real-server rate lines print CPS, InPPS and OutPPS with plain %8llu.
rdest() { # name exact cps inpps outpps inbps outbps
	printf "  -> %-28s %8u %8u %8u" "$1" "$3" "$4" "$5"
	largenum "$6" "$2"; largenum "$7" "$2"; printf "\n"
}
rate_listing() {
	local ex=$1
	header
	printf "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" "Prot LocalAddress:Port" CPS InPPS OutPPS InBPS OutBPS
	stats "$(printf "%-33s" "$F")" "$ex" 0 0 0 0 0
	rdest 198.18.0.2:0 "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$A")" "$ex" 5 1200 0 150000000 0
	rdest 198.18.1.2:80 "$ex" 3 700 0 987654321 0
	rdest 198.18.1.3:80 "$ex" 1 10 0 800 0
	stats "$(printf "%-33s" "$B")" "$ex" 0 0 0 0 0
	rdest 198.18.2.1:53 "$ex" 123456789 0 0 0 0
	stats "$(printf "%-33s" "$D")" "$ex" 0 0 0 0 0
	rdest 198.18.4.1:443 "$ex" 0 0 0 0 0
	rdest "[2001:2::1:1]:443" "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$C")" "$ex" 0 0 0 0 0
	rdest 198.18.3.1:0 "$ex" 0 0 0 0 0
	rdest 198.18.3.2:0 "$ex" 0 0 0 0 0
	rdest 198.18.3.3:0 "$ex" 0 0 0 0 0
	stats "$(printf "%-33s" "$E")" "$ex" 0 0 0 0 0
}
rate_listing 0 > rate.golden
rate_listing 1 > rate_exact.golden

# --thresholds, --persistent-conn and --tun-info keep the normal
# service line and change the real-server columns.
services_with() { # function printing the dest lines of a service by key
	local f=$1
	printf "%s %s" "$F" wlc; printf " persistent %u" 3600; printf "\n"; $f F
	printf "%s %s" "$A" wlc; printf " persistent %u" 300; printf " mask %s" 255.255.255.0; printf "\n"; $f A
	printf "%s %s" "$B" rr; printf " ops"; printf "\n"; $f B
	printf "%s %s" "$D" mh; printf " (%s)" mh-port; printf " persistent %u" 600; printf " mask %i" 64; printf "\n"; $f D
	printf "%s %s" "$C" sh; printf " (%s)" sh-fallback,sh-port; printf "\n"; $f C
	printf "%s %s\n" "$E" wrr
}

thr() { printf "  -> %-28s %-10u %-10u %-10u %-10u\n" "$@"; }
thr_dests() {
	case $1 in
	F) thr 198.18.0.2:0 0 0 0 0 ;;
	A) thr 198.18.1.2:80 0 0 5 7; thr 198.18.1.3:80 1000 800 12 40 ;;
	B) thr 198.18.2.1:53 0 0 0 3 ;;
	D) thr 198.18.4.1:443 0 0 0 0; thr "[2001:2::1:1]:443" 0 0 2 0 ;;
	C) thr 198.18.3.1:0 0 0 1 2; thr 198.18.3.2:0 0 0 0 0; thr 198.18.3.3:0 0 0 0 0 ;;
	esac
}
{
	header
	printf "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" "Prot LocalAddress:Port" Uthreshold Lthreshold ActiveConn InActConn
	services_with thr_dests
} > thresholds.golden

pc() { printf "  -> %-28s %-9u %-11u %-10u %-10u\n" "$@"; }
pc_dests() {
	case $1 in
	F) pc 198.18.0.2:0 1 0 0 0 ;;
	A) pc 198.18.1.2:80 1 0 5 7; pc 198.18.1.3:80 2 3 12 40 ;;
	B) pc 198.18.2.1:53 1 0 0 3 ;;
	D) pc 198.18.4.1:443 5 0 0 0; pc "[2001:2::1:1]:443" 1 0 2 0 ;;
	C) pc 198.18.3.1:0 10 0 1 2; pc 198.18.3.2:0 0 0 0 0; pc 198.18.3.3:0 1 0 0 0 ;;
	esac
}
{
	header
	printf "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" "Prot LocalAddress:Port" Weight PersistConn ActiveConn InActConn
	services_with pc_dests
} > persistent_conn.golden

ti() { printf "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" "$@"; }
ti_dests() {
	case $1 in
	F) ti 198.18.0.2:0 Route n/a 1 0 0 ;;
	A) ti 198.18.1.2:80 Route n/a 1 5 7; ti 198.18.1.3:80 Route n/a 2 12 40 ;;
	B) ti 198.18.2.1:53 Masq n/a 1 0 3 ;;
	D) ti 198.18.4.1:443 Tunnel ipip 5 0 0; ti "[2001:2::1:1]:443" Route n/a 1 2 0 ;;
	C) ti 198.18.3.1:0 Tunnel ipip 10 1 2; ti 198.18.3.2:0 Tunnel "$(printf "%s:%d:%s" gue 6080 +c)" 0 0 0; ti 198.18.3.3:0 Local n/a 1 0 0 ;;
	esac
}
{
	header
	printf "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
	services_with ti_dests
} > tun_info.golden

# -L -c, in the snapshot's order; expire is %02d:%02d of minutes, seconds.
conn() { printf "%-3s %-6s %-11s %-18s %-18s %s\n" "$@"; }
{
	printf "IPVS connection entries\n"
	printf "pro expire %-11s %-18s %-18s %s\n" state source virtual destination
	conn TCP "$(printf "%02d:%02d" 14 59)" ESTABLISHED 198.18.9.1:40000 198.19.0.1:80 198.18.1.2:80
	conn TCP "$(printf "%02d:%02d" 0 5)" FIN_WAIT "[2001:2::99]:50000" "[2001:2::10]:443" "[2001:2::1:1]:443"
	conn UDP "$(printf "%02d:%02d" 100 0)" UDP 198.18.9.2:5353 198.18.0.53:53 198.18.2.1:53
	# Mixed families (a 4in6 and a 6in4 tunnel): the kernel prints the
	# destination in its own family (cp->daf) and ipvsadm names each
	# address in its own.
	conn TCP "$(printf "%02d:%02d" 1 0)" SYN_RECV 198.18.9.3:40001 198.19.0.1:80 "[2001:2::1111:2222:3333:4444]:80"
	conn TCP "$(printf "%02d:%02d" 0 59)" ESTABLISHED "[2001:2:0:ffff:ffff:ffff:ffff:ffff]:65535" "[2001:2::10]:443" 198.18.4.1:443
} > conns.golden

# -L -c --persistent-conn adds the engine columns where a connection has one.
{
	printf "IPVS connection entries\n"
	printf "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" state source virtual destination "pe name" pe_data
	conn TCP "$(printf "%02d:%02d" 14 59)" ESTABLISHED 198.18.9.1:40000 198.19.0.1:80 198.18.1.2:80
	conn TCP "$(printf "%02d:%02d" 0 5)" FIN_WAIT "[2001:2::99]:50000" "[2001:2::10]:443" "[2001:2::1:1]:443"
	printf "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n" UDP "$(printf "%02d:%02d" 100 0)" UDP 198.18.9.2:5353 198.18.0.53:53 198.18.2.1:53 sip call-42
	conn TCP "$(printf "%02d:%02d" 1 0)" SYN_RECV 198.18.9.3:40001 198.19.0.1:80 "[2001:2::1111:2222:3333:4444]:80"
	conn TCP "$(printf "%02d:%02d" 0 59)" ESTABLISHED "[2001:2:0:ffff:ffff:ffff:ffff:ffff]:65535" "[2001:2::10]:443" 198.18.4.1:443
} > conns_pc.golden

printf "Timeout (tcp tcpfin udp): %d %d %d\n" 900 120 300 > timeout.golden

{
	printf -- "-A %s -s %s" "-t 198.18.0.1:0" wlc; printf " -p %u" 3600; printf "\n"
	printf -- "-a %s -r %s %s -w %d\n" "-t 198.18.0.1:0" 198.18.0.2:0 -g 1
	printf -- "-A %s -s %s" "-t 198.19.0.1:80" wlc; printf " -p %u" 300; printf " -M %s" 255.255.255.0; printf "\n"
	printf -- "-a %s -r %s %s -w %d\n" "-t 198.19.0.1:80" 198.18.1.2:80 -g 1
	printf -- "-a %s -r %s %s -w %d\n" "-t 198.19.0.1:80" 198.18.1.3:80 -g 2
	printf -- "-A %s -s %s" "-u 198.18.0.53:53" rr; printf " -o"; printf "\n"
	printf -- "-a %s -r %s %s -w %d\n" "-u 198.18.0.53:53" 198.18.2.1:53 -m 1
	printf -- "-A %s -s %s" "-t [2001:2::10]:443" mh; printf " -p %u" 600; printf " -M %i" 64; printf " -b %s" mh-port; printf "\n"
	printf -- "-a %s -r %s %s -w %d --tun-type %s\n" "-t [2001:2::10]:443" 198.18.4.1:443 -i 5 ipip
	printf -- "-a %s -r %s %s -w %d\n" "-t [2001:2::10]:443" "[2001:2::1:1]:443" -g 1
	printf -- "-A %s -s %s" "-f 7" sh; printf " -b %s" sh-fallback,sh-port; printf "\n"
	printf -- "-a %s -r %s %s -w %d --tun-type %s\n" "-f 7" 198.18.3.1:0 -i 10 ipip
	printf -- "-a %s -r %s %s -w %d --tun-type %s --tun-port %d %s\n" "-f 7" 198.18.3.2:0 -i 0 gue 6080 --tun-csum
	printf -- "-a %s -r %s %s -w %d\n" "-f 7" 198.18.3.3:0 -g 1
	printf -- "-A %s -s %s\n" "-f 9 -6" wrr
} > save.golden

# quirkFixture in ipvs131_test.go: ipvsadm 1.31's comparators
# (ipvs_cmp_services, ipvs_cmp_dests) subtract unsigned keys into a signed
# int, and glibc's qsort is a top-down merge sort (msort_with_tmp). The
# order below was worked out with a separate model of both (a Python
# transcription, not the Go code): marks 3000000000 and 4294967295 are
# 2^31 or more above 0 and 7, so they sort first; 172.16.x, 192.168.x and
# 198.19.x are 2^31 or more above 10.x, so they sort before it. The real
# servers 10.0.0.2, 100.64.0.1 and 192.168.0.1 compare in a cycle; the
# kernel dumps them newest first (192.168.0.1, 100.64.0.1, 10.0.0.2, added
# in the reverse order), and the merge sort of that gives 192.168.0.1,
# 10.0.0.2, 100.64.0.1. Marks print with %u. Flags print by bit under the
# scheduler's names (print_sched_flags): sh given flag-1,flag-2 prints
# sh-fallback,sh-port; mh given flag-1,flag-3 prints mh-fallback, since
# under sh and mh print_sched_flags names only the first two bits.
Q1=$(printf "FWM  %u" 3000000000)
Q2=$(printf "FWM  %u" 4294967295)
{
	header
	normal_title
	printf "%s %s" "$Q1" rr; printf " (%s)" flag-3; printf "\n"
	printf "%s %s\n" "$Q2" wlc
	printf "%s %s\n" "$(printf "%-4s %s" TCP 172.16.0.1:80)" wlc
	printf "%s %s" "$(printf "%-4s %s" TCP 192.168.1.1:443)" mh; printf " (%s)" mh-fallback; printf "\n"
	printf "%s %s\n" "$(printf "%-4s %s" TCP 198.19.0.1:80)" wlc
	printf "%s %s\n" "$(printf "%-4s %s" TCP 10.0.0.1:80)" rr
	dest 192.168.0.1:80 Route 1 0 0
	dest 10.0.0.2:80 Route 1 0 0
	dest 100.64.0.1:80 Route 1 0 0
	printf "%s %s\n" "$(printf "%-4s %s" UDP 10.0.0.1:53)" wlc
	printf "%s %s" "$(printf "FWM  %u" 7)" sh; printf " (%s)" sh-fallback,sh-port; printf "\n"
} > quirks_list.golden
{
	printf -- "-A %s -s %s" "-f 3000000000" rr; printf " -b %s" flag-3; printf "\n"
	printf -- "-A %s -s %s\n" "-f 4294967295" wlc
	printf -- "-A %s -s %s\n" "-t 172.16.0.1:80" wlc
	printf -- "-A %s -s %s" "-t 192.168.1.1:443" mh; printf " -b %s" mh-fallback; printf "\n"
	printf -- "-A %s -s %s\n" "-t 198.19.0.1:80" wlc
	printf -- "-A %s -s %s\n" "-t 10.0.0.1:80" rr
	printf -- "-a %s -r %s %s -w %d\n" "-t 10.0.0.1:80" 192.168.0.1:80 -g 1
	printf -- "-a %s -r %s %s -w %d\n" "-t 10.0.0.1:80" 10.0.0.2:80 -g 1
	printf -- "-a %s -r %s %s -w %d\n" "-t 10.0.0.1:80" 100.64.0.1:80 -g 1
	printf -- "-A %s -s %s\n" "-u 10.0.0.1:53" wlc
	printf -- "-A %s -s %s" "-f 7" sh; printf " -b %s" sh-fallback,sh-port; printf "\n"
} > quirks_save.golden
