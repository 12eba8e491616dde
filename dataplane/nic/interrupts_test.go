package nic

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseInterrupts(t *testing.T) {
	f, err := os.Open("testdata/igb/interrupts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseInterrupts(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"eth1": 46, "eth1-rx-0": 47, "eth1-rx-1": 48, "eth1-tx-0": 49, "eth1-tx-1": 50,
		"ahci[0000:00:1f.2]": 51, "eth1-shared": 51}
	for name, irq := range want {
		if got[name] != irq {
			t.Errorf("irq of %q = %d, want %d", name, got[name], irq)
		}
	}
	for name := range got {
		if isDigits(name) {
			t.Errorf("count column %q taken for a name", name)
		}
	}

	// Architecture counter lines have no IRQ number and must not appear.
	arch, err := parseInterrupts(strings.NewReader("  CPU0\nNMI:  4  Non-maskable interrupts\nERR: 0\n 9: 1 IO-APIC 9-fasteoi acpi\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := (interrupts{"IO-APIC": 9, "9-fasteoi": 9, "acpi": 9}); !reflect.DeepEqual(arch, w) {
		t.Errorf("parseInterrupts = %v, want %v", arch, w)
	}
}

// TestParseHostInterrupts checks that the live file parses, whatever its
// drivers; it is the format the fixtures imitate.
func TestParseHostInterrupts(t *testing.T) {
	f, err := os.Open("/proc/interrupts")
	if err != nil {
		t.Skipf("no /proc/interrupts here: %v", err)
	}
	defer f.Close()
	if _, err := parseInterrupts(f); err != nil {
		t.Fatal(err)
	}
}

func TestCheckIfName(t *testing.T) {
	for _, ok := range []string{"eth0", "veth-a.10", "a", strings.Repeat("x", 15)} {
		if err := checkIfName(ok); err != nil {
			t.Errorf("checkIfName(%q) = %v, want nil", ok, err)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		strings.Repeat("x", 16): "is 16 bytes long, the limit is 15",
		"..":                    "not allowed",
		"eth0:1":                "contains",
		"a b":                   "contains",
		"a/b":                   "contains",
	}
	for name, want := range bad {
		if err := checkIfName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkIfName(%q) = %v, want error containing %q", name, err, want)
		}
	}
}
