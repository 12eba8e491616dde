#!/bin/sh
# afvs-check.sh: keepalived's vrrp_script for an AFVS director. It exits
# 0 while this director's afvs answers on its control socket, so that a
# director whose afvs died (keepalived still running) goes to FAULT and
# gives the address up, instead of holding it and forwarding nothing.
# Settings (AFVSADM, AFVS_SOCKET) come from afvs-notify.env next to it.

env_file=${AFVS_NOTIFY_ENV:-$(dirname "$0")/afvs-notify.env}
if [ -r "$env_file" ]; then
	# shellcheck disable=SC1090
	. "$env_file"
fi
if [ -n "${AFVS_SOCKET:-}" ]; then
	export AFVS_SOCKET
fi
exec "${AFVSADM:-afvsadm}" -L --daemon >/dev/null 2>&1
