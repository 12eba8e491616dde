// Package keepalived holds the keepalived set-up AFVS ships for an HA pair
// of directors: keepalived-master.conf and keepalived-backup.conf (VRRPv3
// for the pair's next-hop address, no virtual_server blocks), and the
// notify script afvs-notify.sh with its settings afvs-notify.env, which
// switches afvs's connection sync daemon between master and backup as
// keepalived changes state, and afvs-check.sh, the vrrp_script that puts
// a director whose afvs died in FAULT. The files are embedded so that the HA lab of
// internal/testnet, its end-to-end tests and `afvs-lab demo --ha` run
// exactly what an operator installs.
package keepalived

import "embed"

// Files holds the shipped files by name.
//
//go:embed keepalived-master.conf keepalived-backup.conf afvs-notify.sh afvs-notify.env afvs-check.sh
var Files embed.FS

// Names of the shipped files.
const (
	MasterConf = "keepalived-master.conf"
	BackupConf = "keepalived-backup.conf"
	Notify     = "afvs-notify.sh"
	NotifyEnv  = "afvs-notify.env"
	Check      = "afvs-check.sh"
)

// Dir is where the configs expect the scripts; NotifyPath and CheckPath
// are the scripts' paths there.
const (
	Dir        = "/etc/keepalived/"
	NotifyPath = Dir + Notify
	CheckPath  = Dir + Check
)
