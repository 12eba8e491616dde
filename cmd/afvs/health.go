package main

import (
	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/control"
	"github.com/afvs/afvs/vs"
)

// serviceChecks turns the services' own health checks in c into the
// control plane's, by service key.
func serviceChecks(c *config.Config) (map[vs.Key]control.ServiceCheck, error) {
	hs, err := c.ServiceHealth()
	if err != nil {
		return nil, err
	}
	m := make(map[vs.Key]control.ServiceCheck, len(hs))
	for k, h := range hs {
		path, status := h.Path, h.Status
		if path == "" {
			path = "/"
		}
		if status == 0 {
			status = 200
		}
		sc := control.ServiceCheck{Port: uint16(h.Port)}
		switch h.Type {
		case "tcp":
			sc.Dial = control.TCPCheck
		case "udp":
			sc.Dial = control.UDPCheck
		case "http":
			sc.Dial = control.HTTPCheck(path, status)
		case "https":
			sc.Dial = control.HTTPSCheck(path, status)
		case "exec":
			sc.Dial, sc.Exec = control.ExecCheck(h.Command), true
		}
		m[k] = sc
	}
	return m, nil
}
