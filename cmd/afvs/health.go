package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync/atomic"

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
		sc := control.ServiceCheck{Port: uint16(h.Port), Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
		switch h.Type { // "": the top-level check
		case "tcp":
			sc.Dial = control.TCPCheck
		case "udp":
			sc.Dial = control.UDPCheck
		case "http", "https":
			sc.Dial = control.HTTPGetCheck(control.HTTPGet{HTTPS: h.Type == "https", Path: path, Status: status, Digest: h.Digest, VirtualHost: h.VirtualHost})
		case "dns":
			if sc.Dial, err = dnsCheck(h.DNSType, h.DNSName); err != nil {
				return nil, fmt.Errorf("service %s: %w", k, err)
			}
		case "smtp":
			sc.Dial = control.SMTPCheck(or(h.HELOName, config.DefaultHELOName))
		case "exec":
			sc.Dial, sc.Exec = control.ExecCheck(h.Command), true
		}
		m[k] = sc
	}
	return m, nil
}

// healthOptions are the control plane's health-check options for c. The
// services' own checks and sorry servers are read through checks and
// sorry, which reloads replace.
func healthOptions(c *config.Config, checks *atomic.Pointer[map[vs.Key]control.ServiceCheck], sorry *atomic.Pointer[map[vs.Key]vs.Real], log *slog.Logger) control.HealthOptions {
	h := c.Health
	opt := control.HealthOptions{
		Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall,
		HTTPS:  h.Type == "https",
		Remove: h.OnFailure == "remove",
		ForService: func(k vs.Key) (control.ServiceCheck, bool) {
			c, ok := (*checks.Load())[k]
			return c, ok
		},
		Sorry: func(k vs.Key) (vs.Real, bool) {
			r, ok := (*sorry.Load())[k]
			return r, ok
		},
		OnChange: func(a netip.AddrPort, up bool) {
			switch {
			case up:
				log.Info("real server up: back with its configured weight", "real", a)
			case h.OnFailure == "remove":
				log.Warn("real server down: removed from its service (its connections wait in the trash)", "real", a)
			default:
				log.Warn("real server down: quiesced (weight 0)", "real", a)
			}
		},
		OnApplyError: func(err error) {
			log.Error("health: the director refused the new table; the dataplane keeps the old one, retried at the next check", "err", err)
		},
	}
	switch h.Type {
	case "http", "https":
		opt.HTTPPath, opt.HTTPStatus, opt.HTTPDigest, opt.HTTPVirtualHost = h.Path, h.Status, h.Digest, h.VirtualHost
	case "dns":
		// keepalived's DNS_CHECK queries over UDP whatever the service's
		// protocol: a DNS server answers on both.
		dial, err := dnsCheck(h.DNSType, h.DNSName)
		if err != nil { // validated with the config: should not happen
			dial = func(context.Context, netip.AddrPort) error { return err }
		}
		opt.Dial, opt.UDPDial = dial, dial
	case "smtp":
		opt.Dial = control.SMTPCheck(or(h.HELOName, config.DefaultHELOName))
	case "exec":
		opt.Command = h.Command
	}
	return opt
}

// dnsCheck is the DNS check for a health section's dns_type and
// dns_name, either one left out taking its default.
func dnsCheck(typ, name string) (func(context.Context, netip.AddrPort) error, error) {
	return control.DNSCheck(or(typ, config.DefaultDNSType), or(name, config.DefaultDNSName))
}

// or is s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// healthChange is one health setting a reload changed.
type healthChange struct {
	key      string
	old, new any
}

// healthChanges names the health settings that differ between the running
// config and a reloaded one: the top-level section's keys, and each
// service's own, by service (a service added or removed with the reload
// is not a change of its settings).
func healthChanges(old, cur *config.Config) []healthChange {
	changes := diffHealth("health", old.Health, cur.Health)
	olds, err1 := old.ServiceHealth()
	curs, err2 := cur.ServiceHealth()
	if err1 != nil || err2 != nil {
		return changes // both validated already: should not happen
	}
	oldKeys, curKeys := serviceKeys(old), serviceKeys(cur)
	for i, k := range curKeys {
		if !slices.Contains(oldKeys, k) {
			continue
		}
		changes = append(changes, diffHealth(fmt.Sprintf("services[%d].health", i), olds[k], curs[k])...)
	}
	return changes
}

// serviceKeys are c's services' keys, in order (zero keys for services
// that do not convert, which validation refuses anyway).
func serviceKeys(c *config.Config) []vs.Key {
	t, err := c.VS()
	if err != nil {
		return nil
	}
	keys := make([]vs.Key, len(t.Services))
	for i := range t.Services {
		keys[i] = t.Services[i].Key
	}
	return keys
}

// diffHealth compares two health sections field by field and names each
// difference by its config key under prefix.
func diffHealth(prefix string, a, b any) []healthChange {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []healthChange
	for i := range va.NumField() {
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		if reflect.DeepEqual(fa, fb) {
			continue
		}
		key := va.Type().Field(i).Tag.Get("mapstructure")
		out = append(out, healthChange{prefix + "." + key, fmt.Sprint(fa), fmt.Sprint(fb)})
	}
	return out
}
