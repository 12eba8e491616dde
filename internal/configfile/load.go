// Package configfile reads afvs's configuration: a YAML, TOML or JSON file
// (or the built-in default), AFVS_* environment variables and the daemon's
// command-line flags, into a validated config.Config. It is viper's only
// home, shared by the daemon (cmd/afvs) and the lab tools (cmd/afvs-lab)
// so both read a config file the same way.
package configfile

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/afvs/afvs/config"
	"github.com/afvs/afvs/vs"
)

// Builtin is what `afvs run` uses without --config: one TCP service
// on the demo lab's VIP, in DR mode, with three real servers of weights
// 1, 2 and 3. Every address is in the RFC 2544 benchmark range.
const Builtin = `
interfaces: [eth0]
services:
  - proto: tcp
    address: 198.19.0.1
    port: 80
    scheduler: wlc
    forward: dr
    reals:
      - {address: 198.18.0.11, weight: 1}
      - {address: 198.18.0.12, weight: 2}
      - {address: 198.18.0.13, weight: 3}
`

// Load reads a config file (YAML, TOML or JSON by extension) or, for an
// empty path, the built-in default; applies AFVS_* environment variables
// and the flags of fs that are set (xdp-mode, metrics, socket, log-level,
// interface); rejects unknown keys; and validates the result.
func Load(path string, fs *pflag.FlagSet) (*config.Config, error) {
	v := viper.New()
	for k, val := range config.Defaults() {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("AFVS")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path == "" {
		v.SetConfigType("yaml")
		if err := v.ReadConfig(strings.NewReader(Builtin)); err != nil {
			return nil, fmt.Errorf("built-in config: %w", err)
		}
	} else {
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".toml", ".json":
		default:
			return nil, fmt.Errorf("config %s: extension must be .yaml, .yml, .toml or .json", path)
		}
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if fs != nil {
		bind := map[string]string{"xdp-mode": "xdp_mode", "metrics": "metrics.address", "socket": "control.socket", "log-level": "log.level", "interface": "interfaces"}
		for flag, key := range bind {
			if f := fs.Lookup(flag); f != nil && f.Changed {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, err
				}
			}
		}
	}
	// Environment variables only reach keys viper knows; name them so
	// AFVS_TABLE_CAPACITY and friends work without a file entry.
	for _, k := range []string{"interfaces", "xdp_mode", "frames", "table.capacity", "table.templates", "timeouts.tcp", "timeouts.tcpfin", "timeouts.udp", "ipvs.conn_reuse_mode", "ipvs.expire_nodest_conn", "ipvs.expire_quiescent_template", "metrics.address", "control.socket", "log.level", "health.interval"} {
		v.BindEnv(k)
	}
	var c config.Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, persistenceHook, intHook, mapstructure.StringToSliceHookFunc(","))
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", cleanDecodeError(err))
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// durationHook accepts "90s" style strings and plain numbers of seconds.
// The whole string must parse: "15 minutes" is an error, not 15 seconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	switch x := data.(type) {
	case string:
		if d, err := time.ParseDuration(x); err == nil {
			return d, nil
		}
		if secs, err := strconv.ParseFloat(x, 64); err == nil && !math.IsNaN(secs) && !math.IsInf(secs, 0) {
			return time.Duration(secs * float64(time.Second)), nil
		}
		return nil, fmt.Errorf("%q: not a duration such as 90s or 2m, or a number of seconds", x)
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	}
	return data, nil
}

// persistenceHook reads persistent: true as a bare -p (360 s, what
// ipvsadm sends) and false as off. Without it the weak decoding would make
// true a timeout of one second.
func persistenceHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(config.Persistence(0)) {
		return data, nil
	}
	if b, ok := data.(bool); ok {
		if b {
			return config.Persistence(vs.DefaultPersistTimeout), nil
		}
		return config.Persistence(0), nil
	}
	return data, nil
}

// intHook parses integers given as strings (environment variables always
// are) itself, so a bad one is reported with its value; mapstructure's own
// message gives only strconv's "invalid syntax".
func intHook(from, to reflect.Type, data any) (any, error) {
	x, ok := data.(string)
	if !ok || to.Kind() != reflect.Int || to == reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
	if err != nil {
		return nil, fmt.Errorf("%q: not an integer", x)
	}
	return int(n), nil
}

// mapstructure's phrasing, rewritten so every complaint starts with its
// key path as the config package's own errors do.
var (
	decodePreamble = regexp.MustCompile(`^decoding failed due to the following error\(s\):\s*`)
	invalidKeys    = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	quotedPath     = regexp.MustCompile(`^'([^']*)' `)
)

// keyPath renders a key under a mapstructure path ("" is the top level).
func keyPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func cleanDecodeError(err error) error {
	// mapstructure lists its complaints one per line after a preamble; one
	// line reads better.
	msg := decodePreamble.ReplaceAllString(strings.TrimSpace(err.Error()), "")
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l == "" {
			continue
		}
		if m := invalidKeys.FindStringSubmatch(l); m != nil {
			for _, k := range strings.Split(m[2], ", ") {
				parts = append(parts, fmt.Sprintf("%s: unknown key (not part of the afvs configuration)", keyPath(m[1], k)))
			}
			continue
		}
		parts = append(parts, quotedPath.ReplaceAllString(l, "$1: "))
	}
	return errors.New(strings.Join(parts, "; "))
}
