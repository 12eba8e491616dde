package layout

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/afvs/afvs"

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
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
	if len(ps) < 10 {
		t.Fatalf("go list found only %d packages", len(ps))
	}
	return ps
}

// deps is `go list -deps` of one package: everything its binary links.
func deps(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", path).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", path, err)
	}
	return strings.Fields(string(out))
}

// under reports whether path is the package prefix or one below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// homes: production code (not tests) imports each dependency only from its
// home package. A dependency with no home is for tests only.
var homes = map[string][]string{
	"github.com/asavie/xdp":               nil, // the benchmarks' baseline, in dataplane/xsk's tests
	"github.com/cilium/ebpf":              {mod + "/dataplane/xdpprog"},
	"github.com/vishvananda/netlink":      {mod + "/dataplane/nic"},
	"github.com/vishvananda/netns":        {mod + "/dataplane/nic"},
	"github.com/spf13/viper":              {mod + "/internal/configfile"},
	"github.com/go-viper/mapstructure":    {mod + "/internal/configfile"},
	"github.com/google/gopacket":          {mod + "/dataplane/replay", testsupport, testsupport + "/checker"}, // offline tools and tests' packet builder, never the hot path
	"github.com/prometheus/client_golang": {mod + "/control"},
	"golang.org/x/net":                    {mod + "/control"}, // dnsmessage, for the DNS health check
	"gonum.org/v1/plot":                   {mod + "/sim"},
	"pgregory.net/rapid":                  nil,
}

// testHomes: the test-only dependencies that only some packages' tests may
// import (the others, gopacket for one, any test may use).
var testHomes = map[string][]string{
	"github.com/asavie/xdp": {mod + "/dataplane/xsk"},
}

// lab is the lab and research code: the namespace lab, the benchmark
// harness and the simulator, which only the lab command and each other
// import. The daemon and afvsadm link none of it.
var lab = []string{mod + "/internal/testnet", mod + "/bench", mod + "/sim", mod + "/cmd/afvs-lab"}

// TestImportRules checks the direct imports of every package.
func TestImportRules(t *testing.T) {
	leaves := []string{mod + "/conntrack", mod + "/sched", mod + "/encap", mod + "/internal/header", mod + "/internal/plainstore", mod + "/vs", mod + "/ipvssync"}
	// The low-level helpers every leaf may use.
	leafHelpers := []string{mod + "/internal/header", mod + "/internal/plainstore"}
	ps := packages(t)
	used := map[string]bool{} // "dep home" pairs in use, to find dead homes
	for _, p := range ps {
		for _, imp := range p.Imports {
			for dep, allowed := range homes {
				if !under(imp, dep) {
					continue
				}
				if !slices.Contains(allowed, p.ImportPath) {
					t.Errorf("%s imports %s; only %v may", p.ImportPath, imp, allowed)
				}
				used[dep+" "+p.ImportPath] = true
			}
			if !slices.ContainsFunc(lab, func(l string) bool { return under(p.ImportPath, l) }) &&
				slices.ContainsFunc(lab, func(l string) bool { return under(imp, l) }) {
				t.Errorf("%s imports lab code %s: only %v may", p.ImportPath, imp, lab)
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			for dep, allowed := range testHomes {
				if under(imp, dep) {
					if !slices.Contains(allowed, p.ImportPath) {
						t.Errorf("tests of %s import %s; only those of %v may", p.ImportPath, imp, allowed)
					}
					used[dep+" test "+p.ImportPath] = true
				}
			}
		}
		if slices.Contains(leaves, p.ImportPath) {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, mod+"/") && !slices.Contains(leafHelpers, imp) {
					t.Errorf("leaf %s imports %s: leaves import no other afvs package but %v", p.ImportPath, imp, leafHelpers)
				}
			}
		}
	}
	// A home that no longer imports its dependency is a dead exception.
	for dep, allowed := range homes {
		for _, a := range allowed {
			if !used[dep+" "+a] {
				t.Errorf("%s is listed as the home of %s but does not import it: remove it from homes", a, dep)
			}
		}
	}
	for dep, allowed := range testHomes {
		for _, a := range allowed {
			if !used[dep+" test "+a] {
				t.Errorf("tests of %s are listed as users of %s but do not import it: remove them from testHomes", a, dep)
			}
		}
	}
}

// heavy are the dependencies the privileged and client binaries are
// measured against.
var heavy = []string{"github.com/cilium/ebpf", "github.com/asavie/xdp", "github.com/vishvananda/netlink",
	"github.com/vishvananda/netns", "github.com/prometheus", "gonum.org", "github.com/google/gopacket"}

// TestBinaryDependencies checks what each binary links (go list -deps), so
// that the split by privilege cannot regress through an indirect import.
func TestBinaryDependencies(t *testing.T) {
	// Each entry forbids a package and those below it; the control server
	// is forbidden alone, since control/api lies below it.
	server := mod + "/control"
	forbid := func(bin string, what []string) {
		t.Helper()
		for _, d := range deps(t, mod+"/"+bin) {
			for _, w := range what {
				if w == server && d == server || w != server && under(d, w) {
					t.Errorf("%s links %s", bin, d)
				}
			}
		}
	}
	// afvsadm is a client of the control socket: no dataplane, no control
	// server, no lab code, none of the heavy libraries, and no TLS (the
	// control client speaks HTTP/1.0 on a unix socket without net/http).
	forbid("cmd/afvsadm", slices.Concat(heavy, lab, []string{mod + "/dataplane", server, mod + "/control/controltest", mod + "/conntrack",
		"net/http", "crypto/tls"}))
	// The control API package itself imports no dataplane code.
	forbid("control/api", slices.Concat(heavy, []string{mod + "/dataplane", server, mod + "/conntrack", mod + "/sched", "net/http"}))
	// The daemon links the dataplane but no lab code and no lab library.
	forbid("cmd/afvs", slices.Concat(lab, []string{mod + "/dataplane/replay", "gonum.org", "github.com/google/gopacket"}))
	// The simulator runs the processor, not the control server.
	forbid("sim", []string{server, "github.com/prometheus", mod + "/internal/testnet", mod + "/bench"})
	// It needs the processor (package dataplane), not the Director: none of
	// the kernel-facing packages package dataplane/director brings in.
	forbid("sim", []string{mod + "/dataplane/nic", mod + "/dataplane/xsk", mod + "/dataplane/xdpprog", "github.com/cilium/ebpf", "github.com/vishvananda"})
}

// TestAfvsadmSize builds afvsadm with default flags and holds it under the
// issue's bound, the end the dependency rules above serve.
func TestAfvsadmSize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds afvsadm")
	}
	const limit = 8 << 20
	bin := filepath.Join(t.TempDir(), "afvsadm")
	if out, err := exec.Command("go", "build", "-o", bin, mod+"/cmd/afvsadm").CombinedOutput(); err != nil {
		t.Fatalf("build afvsadm: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= limit {
		t.Errorf("afvsadm is %d bytes; it must stay under %d", fi.Size(), limit)
	}
}
