// Package control is the daemon's control plane API: HTTP+JSON on a unix
// socket (default /run/afvs/afvs.sock, mode 0600), so `curl --unix-socket`
// works and afvsadm is a thin client.
//
// The server owns the current vs.Table. Every change (an ipvsadm command, a
// restore, a reload) is applied to a copy; the copy is validated and compiled
// by the dataplane, and only then becomes current. A request that would leave
// the table inconsistent is refused as a whole and changes nothing.
//
// Access is root's only, twice over: Listen creates the socket 0600 in a 0700
// directory, and RootOnly checks every peer's uid with SO_PEERCRED, so a
// socket whose mode was loosened by hand still answers other users with 403.
//
// Endpoints (all JSON; errors are {"error": "..."} with a 4xx status):
//
//	GET  /v1/status    counters summed over workers, drops by reason,
//	                   steering figures, connection table occupancy
//	GET  /v1/services  services and real servers with counters (less any
//	                   -Z base), estimated rates and connection counts
//	GET  /v1/conns     the connection table, templates included (ipvsadm -Lc)
//	GET  /v1/timeouts  the tcp, tcpfin and udp timeouts in seconds
//	POST /v1/commands  {"commands": [["-A","-t","198.19.0.1:80"], ...]}:
//	                   ipvsadm command lines applied together or not at
//	                   all; 409 names the first command that failed
//	POST /v1/reload    re-read the configuration file (as SIGHUP does);
//	                   409 says why a refused reload left the old one running
//
// For example:
//
//	curl --unix-socket /run/afvs/afvs.sock http://afvs/v1/services
//	curl --unix-socket /run/afvs/afvs.sock -d '{"commands":[["-Z"]]}' http://afvs/v1/commands
//
// Rates follow IPVS's estimator (estimator.go): a 2 s sample of the
// counters' growth, smoothed with weight 1/4. MetricsHandler serves the same
// figures to Prometheus, read at scrape time, so nothing on the hot path
// knows about Prometheus.
package control
