package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary file contents, as YAML, JSON or TOML, to the
// config loader: it never panics, every error says it is about the
// config (and, from the checks, which key), and a
// config it accepts is one the daemon can run, so that `afvs check`
// passing means `afvs run` starts: it validates again and builds its
// service table, sorry servers and health checks without error.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(Builtin), uint8(0))
	f.Add([]byte(`{"interfaces": ["eth0"], "services": [{"proto": "udp", "address": "198.19.0.1", "port": 53,
		"reals": [{"address": "198.18.0.11", "weight": 1}]}]}`), uint8(1))
	f.Add([]byte("interfaces = [\"eth0\"]\n[[services]]\nproto = \"tcp\"\naddress = \"198.19.0.1\"\nport = 80\n"+
		"[[services.reals]]\naddress = \"198.18.0.11\"\n"), uint8(2))
	f.Add([]byte(Builtin+"timeouts: {tcp: 900s, tcpfin: 120s, udp: 300s}\nicmp: {rate: 1000, burst: 50}\n"+
		"health: {interval: 2s, timeout: 1s, rise: 2, fall: 3, type: http, path: /, status: 200}\n"), uint8(0))
	f.Add([]byte("interfaces: 42\nservices: [{proto: tcp, address: 198.19.0.1, port: 80.5, reals: [{address: 198.18.0.11, weight: true}]}]\n"), uint8(0))
	f.Add([]byte(Builtin+"    persistent: 300\n    netmask: 255.255.255.0\n    sorry: {address: 198.18.0.14}\n"), uint8(0))
	exts := []string{".yaml", ".json", ".toml"}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		path := filepath.Join(dir, "afvs"+exts[int(sel)%len(exts)])
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config") {
				t.Fatalf("error does not say it is about the config: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded config fails validation: %v", err)
		}
		if _, err := cfg.VS(); err != nil {
			t.Fatalf("loaded config builds no service table: %v", err)
		}
		if _, err := cfg.SorryServers(); err != nil {
			t.Fatalf("loaded config's sorry servers: %v", err)
		}
		if _, err := cfg.ServiceHealth(); err != nil {
			t.Fatalf("loaded config's health checks: %v", err)
		}
	})
}
