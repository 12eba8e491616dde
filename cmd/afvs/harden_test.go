package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/configfile"
)

// TestCheckStrictTypes: a value of the wrong type is an error naming its
// key, in every format, where viper's loose decoding used to turn 42 into
// the interface "42", 80.5 into port 80 and true into weight 1. Whole
// numbers still decode into integers (JSON has only floating-point
// numbers) and strings from the environment are still parsed.
func TestCheckStrictTypes(t *testing.T) {
	svc := "services:\n  - proto: tcp\n    address: 198.19.0.1\n    port: 80\n    scheduler: rr\n"
	for _, tc := range []struct {
		name, file, text string
		want             []string
	}{
		{"interfaces number", "a.yaml", "interfaces: 42\n", []string{"interfaces"}},
		{"interfaces boolean", "a.yaml", "interfaces: true\n", []string{"interfaces"}},
		{"interface name number", "a.yaml", "interfaces: [42]\n", []string{"interfaces[0]"}},
		{"port with a fraction", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: 198.19.0.1, port: 80.5, scheduler: rr}]\n", []string{"services[0].port", "80.5", "not an integer"}},
		{"port with a fraction json", "a.json", `{"interfaces":["eth0"],"services":[{"proto":"tcp","address":"198.19.0.1","port":80.5}]}`, []string{"services[0].port", "80.5", "not an integer"}},
		{"port with a fraction toml", "a.toml", "interfaces = [\"eth0\"]\n[[services]]\nproto = \"tcp\"\naddress = \"198.19.0.1\"\nport = 80.5\n", []string{"services[0].port", "80.5", "not an integer"}},
		{"weight boolean", "a.yaml", "interfaces: [eth0]\n" + svc + "    reals: [{address: 198.18.0.11, weight: true}]\n", []string{"services[0].reals[0].weight", "true", "integer"}},
		{"frames boolean", "a.yaml", "interfaces: [eth0]\nframes: false\n", []string{"frames", "false", "integer"}},
		{"capacity with a fraction", "a.yaml", "interfaces: [eth0]\ntable: {capacity: 1000.25}\n", []string{"table.capacity", "1000.25", "not an integer"}},
		{"address number", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: 3338862593, port: 80}]\n", []string{"services[0].address"}},
		{"scheduler list", "a.yaml", "interfaces: [eth0]\nservices: [{proto: tcp, address: 198.19.0.1, port: 80, scheduler: [rr]}]\n", []string{"services[0].scheduler"}},
		{"reals a map", "a.yaml", "interfaces: [eth0]\n" + svc + "    reals: {address: 198.18.0.11}\n", []string{"services[0].reals"}},
		{"xdp mode number", "a.yaml", "interfaces: [eth0]\nxdp_mode: 1\n", []string{"xdp_mode"}},
		{"timeout boolean", "a.yaml", "interfaces: [eth0]\ntimeouts: {tcp: true}\n", []string{"timeouts.tcp"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRefuses(t, tc.file, tc.text, tc.want) })
	}
	// Whole numbers in every format, and strings where the environment
	// gives them, still decode.
	for _, tc := range []struct{ file, text string }{
		{"b.json", `{"interfaces":["eth0"],"frames":2048,"services":[{"proto":"tcp","address":"198.19.0.1","port":80.0,"reals":[{"address":"198.18.0.11","weight":3}]}]}`},
		{"b.yaml", "interfaces: [eth0]\nframes: 2048.0\n" + svc + "    reals: [{address: 198.18.0.11, weight: 3}]\n"},
		{"b.toml", "interfaces = [\"eth0\"]\nframes = 2048\n[[services]]\nproto = \"tcp\"\naddress = \"198.19.0.1\"\nport = 80\n  [[services.reals]]\n  address = \"198.18.0.11\"\n  weight = 3\n"},
	} {
		c, err := configfile.Load(writeConfig(t, tc.file, tc.text), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if c.Frames != 2048 || c.Services[0].Port != 80 || *c.Services[0].Reals[0].Weight != 3 {
			t.Errorf("%s decoded as frames %d port %d weight %d", tc.file, c.Frames, c.Services[0].Port, *c.Services[0].Reals[0].Weight)
		}
	}
	t.Setenv("AFVS_FRAMES", "1024")
	t.Setenv("AFVS_INTERFACES", "veth1,veth2")
	c, err := configfile.Load(writeConfig(t, "c.yaml", "interfaces: [eth0]\n"), nil)
	if err != nil || c.Frames != 1024 || strings.Join(c.Interfaces, ",") != "veth1,veth2" {
		t.Errorf("environment strings: %v, %+v", err, c)
	}
}

// TestConfigFileSizeLimit: a config path that leads to an endless or huge
// source is refused once configfile.MaxConfigBytes have been read, with an error
// that names the file and the limit; one at the limit is read.
func TestConfigFileSizeLimit(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := runCheck([]string{"--config", zero})
	if err == nil || !strings.Contains(err.Error(), zero) || !strings.Contains(err.Error(), fmt.Sprint(configfile.MaxConfigBytes)) {
		t.Errorf("a config linked to /dev/zero: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing /dev/zero took %v", d)
	}
	// A file of exactly the limit is read (and judged on its contents);
	// one byte more is refused.
	body := "interfaces: [eth0]\n"
	pad := "#" + strings.Repeat("x", 998) + "\n"
	var b strings.Builder
	b.WriteString(body)
	for b.Len()+len(pad) <= configfile.MaxConfigBytes {
		b.WriteString(pad)
	}
	b.WriteString(strings.Repeat("#", configfile.MaxConfigBytes-b.Len()))
	at := writeConfig(t, "at.yaml", b.String())
	if err := runCheck([]string{"--config", at}); err != nil {
		t.Errorf("a config of exactly %d bytes: %v", configfile.MaxConfigBytes, err)
	}
	over := writeConfig(t, "over.yaml", b.String()+"\n")
	if err := runCheck([]string{"--config", over}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a config of %d bytes: %v", configfile.MaxConfigBytes+1, err)
	}
}
