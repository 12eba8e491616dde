package main

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afvs/afvs/control/controltest"
	"github.com/afvs/afvs/vs"
)

func TestReloadCommand(t *testing.T) {
	s := controltest.Serve(t)
	good := &vs.Table{}
	if err := good.AddService(vs.Service{Key: vs.Key{Proto: vs.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80}, Sched: "rr"}); err != nil {
		t.Fatal(err)
	}
	s.Reload = func() (*vs.Table, func(), error) { return good, nil, nil }
	if err := runReload([]string{"--socket", s.Socket}); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if n := len(s.Server.Table().Services); n != 1 {
		t.Fatalf("after reload the table has %d services", n)
	}
	// The socket named by a config file.
	cfg := filepath.Join(t.TempDir(), "afvs.yaml")
	os.WriteFile(cfg, []byte("interfaces: [eth0]\ncontrol: {socket: "+s.Socket+"}\n"), 0o644)
	s.Reload = func() (*vs.Table, func(), error) {
		return nil, nil, errors.New("services[0].port: 70000: must be 0..65535")
	}
	err := runReload([]string{"--config", cfg})
	if err == nil || !strings.Contains(err.Error(), "old configuration still running") || !strings.Contains(err.Error(), "70000") {
		t.Errorf("failed reload: %v", err)
	}
	if n := len(s.Server.Table().Services); n != 1 {
		t.Errorf("a failed reload left %d services", n)
	}
	if err := runReload([]string{"--socket", filepath.Join(t.TempDir(), "none.sock")}); err == nil || !strings.Contains(err.Error(), "cannot reach afvs") {
		t.Errorf("reload without a daemon: %v", err)
	}
	if err := runReload([]string{"now"}); err == nil || !strings.Contains(err.Error(), `"now"`) {
		t.Errorf("reload with an argument: %v", err)
	}
}
