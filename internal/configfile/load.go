// Package configfile reads afvs's configuration: a YAML, TOML or JSON file
// (or the built-in default), AFVS_* environment variables and the daemon's
// command-line flags, into a validated config.Config. It is viper's only
// home, shared by the daemon (cmd/afvs) and the lab tools (cmd/afvs-lab)
// so both read a config file the same way.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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
		b, err := readBounded(path, MaxConfigBytes)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		v.SetConfigType(configType(path))
		if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
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
	for _, k := range []string{"interfaces", "xdp_mode", "frames", "table.capacity", "table.templates", "table.nat", "timeouts.tcp", "timeouts.tcpfin", "timeouts.udp", "ipvs.conn_reuse_mode", "ipvs.expire_nodest_conn", "ipvs.expire_quiescent_template", "ipvs.sloppy_tcp", "metrics.address", "control.socket", "log.level", "health.interval"} {
		_ = v.BindEnv(k) // fails only without a key, and k is never empty
	}
	var c config.Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		// viper decodes loosely by default: 42 becomes the interface list
		// ["42"], 80.5 the port 80 and true the weight 1. Strings are
		// still parsed by the hooks below, since environment variables
		// and flags are always strings, but a value of the wrong type in
		// a file is an error that names its key.
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(durationHook, persistenceHook, intHook, boolHook, mapstructure.StringToSliceHookFunc(","))
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
// ipvsadm sends) and false as off; any other boolean where an integer
// belongs is refused (see intHook).
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

// intHook decodes integers strictly. Strings (environment variables
// always are) are parsed here, so a bad one is reported with its value;
// mapstructure's own message gives only strconv's "invalid syntax". A
// number with a fraction is refused (mapstructure would truncate 80.5 to
// 80), while a whole one is accepted, since JSON has only floating-point
// numbers; a boolean or anything else is left for mapstructure to refuse.
func intHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || to == reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	switch x := data.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: not an integer", x)
		}
		return int(n), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return nil, fmt.Errorf("%v: not an integer", x)
		}
		return int(x), nil
	case float32:
		return intHook(from, to, float64(x))
	case bool:
		return nil, fmt.Errorf("%v: a boolean where an integer belongs", x)
	}
	return data, nil
}

// boolHook parses booleans given as strings (environment variables) with
// strconv.ParseBool; every other type goes to mapstructure, which refuses
// anything but a boolean.
func boolHook(from, to reflect.Type, data any) (any, error) {
	x, ok := data.(string)
	if !ok || to.Kind() != reflect.Bool {
		return data, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(x))
	if err != nil {
		return nil, fmt.Errorf("%q: not a boolean (true or false)", x)
	}
	return b, nil
}

// MaxConfigBytes bounds what a config file may hold. The largest table
// afvs serves (vs.MaxServices services, vs.MaxDests real servers) takes a
// small fraction of it even written out one key per line with comments.
const MaxConfigBytes = 4 << 20

// readBounded reads the file at path, refusing it once it has given more
// than limit bytes, so that a config path that leads to /dev/zero, a pipe
// or a huge file fails at once with an error instead of eating memory.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes, the limit for a config file", limit)
	}
	return b, nil
}

// configType is viper's name for the format of the config file at path,
// from its extension (already checked to be one of the four).
func configType(path string) string {
	ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if ext == "yml" {
		return "yaml"
	}
	return ext
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
		l = quotedPath.ReplaceAllString(l, "$1: ")
		if m := wrongType.FindStringSubmatch(l); m != nil {
			l = m[1] + typeWord(m[3]) + " where " + typeWord(m[2]) + " belongs"
		} else if m := notList.FindStringSubmatch(l); m != nil {
			l = m[1] + typeWord(m[2]) + " where a list belongs"
		}
		parts = append(parts, l)
	}
	return errors.New(strings.Join(parts, "; "))
}

// mapstructure's complaints about a value of the wrong type, after the
// key path has been moved to the front.
var (
	wrongType = regexp.MustCompile(`^(.*: )expected type '([^']*)', got unconvertible type '([^']*)'.*$`)
	notList   = regexp.MustCompile(`^(.*: )source data must be an array or slice, got (\S+)$`)
)

// typeWord names a Go type (or reflect kind) as the config author knows it.
func typeWord(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "a boolean"
	case t == "string":
		return "a string"
	case t == "time.Duration":
		return "a duration"
	case strings.HasPrefix(t, "[]"), t == "slice", t == "array":
		return "a list"
	case strings.HasPrefix(t, "map"), t == "map", t == "struct":
		return "a map"
	}
	return "a " + t
}
