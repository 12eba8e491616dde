package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/afvs/afvs"

type pkg struct {
	ImportPath string
	Imports    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var ps []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

// TestImportRules: production code (not tests) imports each dependency only
// from its home package.
func TestImportRules(t *testing.T) {
	homes := map[string][]string{
		"github.com/asavie/xdp":          {mod + "/dataplane/xsk"},
		"github.com/cilium/ebpf":         {mod + "/dataplane/xdpprog"},
		"github.com/vishvananda/netlink": {mod + "/dataplane/nic"},
		"github.com/spf13/viper":         {mod + "/cmd/afvs"},
		"github.com/google/gopacket":     {mod + "/dataplane/replay"}, // offline tools only, never the hot path
	}
	leaves := []string{mod + "/conntrack", mod + "/sched", mod + "/encap", mod + "/internal/header", mod + "/vs"}
	ps := packages(t)
	if len(ps) < 10 {
		t.Fatalf("go list found only %d packages", len(ps))
	}
	for _, p := range ps {
		for _, imp := range p.Imports {
			for dep, allowed := range homes {
				if imp != dep && !strings.HasPrefix(imp, dep+"/") {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || p.ImportPath == a || strings.HasPrefix(p.ImportPath, mod+"/sim") && dep == "github.com/google/gopacket"
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may", p.ImportPath, imp, allowed)
				}
			}
		}
		for _, leaf := range leaves {
			if p.ImportPath != leaf {
				continue
			}
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, mod+"/") && imp != mod+"/internal/header" {
					t.Errorf("leaf %s imports %s: leaves import no other afvs package but internal/header", leaf, imp)
				}
			}
		}
	}
}
