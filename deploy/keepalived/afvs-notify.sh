#!/bin/sh
# afvs-notify.sh: keepalived's notify script for an AFVS director.
#
# keepalived runs it as "afvs-notify.sh TYPE NAME STATE PRIORITY" each
# time the VRRP instance changes state. It switches afvs's connection sync
# daemon to follow the VRRP role, as keepalived's own lvs_sync_daemon does
# for IPVS:
#
#   MASTER               stop the backup sync daemon, start the master one
#   BACKUP, FAULT, STOP  stop the master sync daemon, start the backup one
#
# and logs what it did (syslog tag afvs-notify, or LOG_FILE). Settings come
# from afvs-notify.env next to this script (or $AFVS_NOTIFY_ENV); with
# SYNC_INTERFACE empty, sync is off and the script only logs the state.
#
# keepalived does not wait for one notification's script before it runs
# the next (BACKUP at start-up and MASTER a few adverts later, say), and
# on a busy machine a later run can overtake an earlier one. So each run
# holds LOCK_FILE (flock) while it looks and switches, and takes the role
# from what is true when it holds the lock: master while this director
# holds VRRP_ADDRESS on VRRP_INTERFACE (keepalived adds it before the
# MASTER notification and removes it before the others), backup
# otherwise. Whichever run comes last then leaves the right role. With
# VRRP_ADDRESS empty the STATE argument decides.

set -u

env_file=${AFVS_NOTIFY_ENV:-$(dirname "$0")/afvs-notify.env}
if [ -r "$env_file" ]; then
	# shellcheck disable=SC1090
	. "$env_file"
fi
AFVSADM=${AFVSADM:-afvsadm}
SYNC_INTERFACE=${SYNC_INTERFACE:-}
SYNC_ID=${SYNC_ID:-0}
SYNC_OPTIONS=${SYNC_OPTIONS:-}
LOG_FILE=${LOG_FILE:-}
LOCK_FILE=${LOCK_FILE:-/run/afvs-notify.lock}
VRRP_INTERFACE=${VRRP_INTERFACE:-}
VRRP_ADDRESS=${VRRP_ADDRESS:-}
if [ -n "${AFVS_SOCKET:-}" ]; then
	export AFVS_SOCKET
fi

log() {
	if [ -n "$LOG_FILE" ]; then
		printf '%s afvs-notify[%d]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$$" "$*" >>"$LOG_FILE"
	else
		logger -t afvs-notify -- "$*"
	fi
}

# adm runs afvsadm and logs the command and, when it fails, its output.
adm() {
	out=$("$AFVSADM" "$@" 2>&1)
	code=$?
	if [ "$code" -eq 0 ]; then
		log "afvsadm $*: ok"
	else
		log "afvsadm $*: exit $code: $out"
	fi
	return "$code"
}

if [ $# -lt 3 ]; then
	log "usage: $0 TYPE NAME STATE [PRIORITY] (got: $*)"
	exit 2
fi
state=$3
case $state in
MASTER) role=master other=backup ;;
BACKUP | FAULT | STOP) role=backup other=master ;;
*)
	log "$1 $2: unknown state $state: nothing changed"
	exit 2
	;;
esac
# Held until the script exits: fd 9 stays open.
if ! { exec 9>>"$LOCK_FILE"; } 2>/dev/null || ! flock -w 30 9; then
	log "$1 $2 is $state: could not lock $LOCK_FILE: nothing changed"
	exit 1
fi
if [ -n "$VRRP_ADDRESS" ]; then
	if held=$(ip -o addr show dev "$VRRP_INTERFACE" to "$VRRP_ADDRESS/32" 2>&1); then
		now=backup
		[ -n "$held" ] && now=master
		if [ "$now" != "$role" ]; then
			log "$1 $2 was $state, but $VRRP_ADDRESS is$([ $now = backup ] && echo " not") on $VRRP_INTERFACE now: a later notification overtook this one"
			role=$now
			other=$([ "$now" = master ] && echo backup || echo master)
		fi
	else
		log "ip addr show dev $VRRP_INTERFACE failed: $held: going by the state"
	fi
fi
log "$1 $2 is $state (priority ${4:-unknown}): sync role $role"

if [ -z "$SYNC_INTERFACE" ]; then
	log "connection sync is off (SYNC_INTERFACE is empty): nothing to switch"
	exit 0
fi

# What runs now, as ipvsadm -L --daemon prints it: one line per daemon,
# "master sync daemon (mcast=eth0, syncid=51)".
running=$("$AFVSADM" -L --daemon 2>&1) || {
	log "afvsadm -L --daemon failed: $running"
	exit 1
}
status=0
case $running in
*"$other sync daemon"*) adm --stop-daemon "$other" || status=1 ;;
esac
case $running in
*"$role sync daemon"*) log "$role sync daemon already running" ;;
*)
	# SYNC_OPTIONS is split into words on purpose: --sync-maxlen N etc.
	# shellcheck disable=SC2086
	adm --start-daemon "$role" --mcast-interface "$SYNC_INTERFACE" --syncid "$SYNC_ID" $SYNC_OPTIONS || status=1
	;;
esac
exit $status
