package nic

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// sysTree builds a minimal sysfs with /sys/class/net/DEV/device pointing at
// a bus device named bus, bound to driver. bus == "" makes a virtual device,
// which has no device link at all.
func sysTree(t *testing.T, dev, bus, driver string) string {
	t.Helper()
	root := t.TempDir()
	netdir := filepath.Join(root, "class/net", dev)
	if err := os.MkdirAll(filepath.Join(netdir, "queues/rx-0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if bus == "" {
		return root
	}
	devdir := filepath.Join(root, "devices/pci0000:00", bus)
	drvdir := filepath.Join(root, "bus/pci/drivers", driver)
	for _, d := range []string{devdir, drvdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(devdir, filepath.Join(netdir, "device")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(drvdir, filepath.Join(devdir, "driver")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPlannerFixtures(t *testing.T) {
	type want struct {
		cpu    int
		reason string
	}
	cases := []struct {
		name     string
		fixture  string
		dev      string
		bus      string
		driver   string
		kind     string
		allowed  []int
		queues   int
		override map[int]int
		want     []want
	}{
		{
			name: "virtio", fixture: "virtio", dev: "eth0", bus: "virtio2", driver: "virtio_net",
			allowed: []int{0, 1, 2, 3}, queues: 2,
			want: []want{{1, "irq 38 smp_affinity_list 1"}, {2, "irq 40 smp_affinity_list 2"}},
		},
		{
			name: "ixgbe", fixture: "ixgbe", dev: "eth0", bus: "0000:01:00.0", driver: "ixgbe",
			allowed: []int{0, 1, 2, 3}, queues: 4,
			want: []want{
				{0, "irq 120 smp_affinity_list 0"},
				{1, "irq 121 smp_affinity_list 1"},
				{2, "irq 122 smp_affinity_list 2-3"},
				{0, "irq 123 (eth0-TxRx-3): smp_affinity_list 6-7 has no allowed cpu: spread over allowed cpus 0-3"},
			},
		},
		{
			name: "ixgbe override", fixture: "ixgbe", dev: "eth0", bus: "0000:01:00.0", driver: "ixgbe",
			allowed: []int{0, 1, 2, 3}, queues: 4, override: map[int]int{3: 2, 0: 3},
			want: []want{
				{3, "config override"},
				{1, "irq 121 smp_affinity_list 1"},
				{2, "irq 122 smp_affinity_list 2-3"},
				{2, "config override"},
			},
		},
		{
			// eth10-TxRx-0 must not be taken for eth1's queue 0.
			name: "name prefix is not a match", fixture: "ixgbe", dev: "eth1", bus: "0000:01:00.1", driver: "ixgbe",
			allowed: []int{0, 1, 2, 3}, queues: 1,
			want: []want{{0, "no per-queue irq (ixgbe): spread over allowed cpus 0-3"}},
		},
		{
			name: "i40e", fixture: "i40e", dev: "ens1f0", bus: "0000:3d:00.0", driver: "i40e",
			allowed: []int{0, 1, 2, 3, 4, 5, 6, 7}, queues: 4,
			want: []want{
				{0, "irq 65 smp_affinity_list 0"},
				{1, "irq 66 smp_affinity_list 1"},
				{4, "irq 67 smp_affinity_list 4"},
				{5, "irq 68 smp_affinity_list 5"},
			},
		},
		{
			// taskset 0-1: queues whose IRQ sits elsewhere spread over 0-1
			// without doubling up on the first CPU.
			name: "i40e narrowed affinity", fixture: "i40e", dev: "ens1f0", bus: "0000:3d:00.0", driver: "i40e",
			allowed: []int{0, 1}, queues: 4,
			want: []want{
				{0, "irq 65 smp_affinity_list 0"},
				{1, "irq 66 smp_affinity_list 1"},
				{0, "irq 67 (i40e-ens1f0-TxRx-2): smp_affinity_list 4 has no allowed cpu: spread over allowed cpus 0-1"},
				{1, "irq 68 (i40e-ens1f0-TxRx-3): smp_affinity_list 5 has no allowed cpu: spread over allowed cpus 0-1"},
			},
		},
		{
			name: "ice first allowed cpu of list", fixture: "ice", dev: "ens785f0", bus: "0000:17:00.0", driver: "ice",
			allowed: []int{2, 3}, queues: 2,
			want: []want{{2, "irq 151 smp_affinity_list 0,2"}, {3, "irq 152 smp_affinity_list 1,3"}},
		},
		{
			name: "mlx5 port 0", fixture: "mlx5", dev: "enp59s0f0np0", bus: "0000:3b:00.0", driver: "mlx5_core",
			allowed: []int{0, 1, 2, 3}, queues: 3,
			want: []want{
				{0, "irq 99 smp_affinity_list 0"},
				{1, "irq 100 smp_affinity_list 1"},
				{2, "irq 101 smp_affinity_list 2"},
			},
		},
		{
			name: "mlx5 port 1", fixture: "mlx5", dev: "enp59s0f1np1", bus: "0000:3b:00.1", driver: "mlx5_core",
			allowed: []int{0, 1, 2, 3}, queues: 1,
			want: []want{{3, "irq 110 smp_affinity_list 3"}},
		},
		{
			name: "igb split vectors", fixture: "igb", dev: "eth1", bus: "0000:00:19.0", driver: "igb",
			allowed: []int{0, 1}, queues: 2,
			want: []want{{1, "irq 47 smp_affinity_list 1"}, {0, "irq 48 smp_affinity_list 0"}},
		},
		{
			name: "veth", fixture: "virtio", dev: "veth0", kind: "veth",
			allowed: []int{0, 1}, queues: 3,
			want: []want{
				{0, "no per-queue irq (veth): spread over allowed cpus 0-1"},
				{1, "no per-queue irq (veth): spread over allowed cpus 0-1"},
				{0, "no per-queue irq (veth): spread over allowed cpus 0-1"},
			},
		},
		{
			name: "no procfs", fixture: "absent", dev: "eth0", bus: "virtio2", driver: "virtio_net",
			allowed: []int{0, 1}, queues: 1,
			want: []want{{0, "no per-queue irq (virtio_net): spread over allowed cpus 0-1"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Planner{
				Proc:    filepath.Join("testdata", tc.fixture),
				Sys:     sysTree(t, tc.dev, tc.bus, tc.driver),
				Allowed: tc.allowed,
				Kind:    tc.kind,
			}
			got, err := p.Plan(tc.dev, tc.queues, tc.override)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var wantA []Assignment
			for q, w := range tc.want {
				wantA = append(wantA, Assignment{Queue: q, CPU: w.cpu, Reason: w.reason})
			}
			if !reflect.DeepEqual(got, wantA) {
				t.Errorf("Plan(%s, %d):\n got %+v\nwant %+v", tc.dev, tc.queues, got, wantA)
			}
		})
	}
}

func TestPlannerErrors(t *testing.T) {
	p := Planner{Proc: "testdata/ixgbe", Sys: t.TempDir(), Allowed: []int{0, 1}}
	cases := []struct {
		name     string
		dev      string
		queues   int
		override map[int]int
		wantErr  string
	}{
		{"zero queues", "eth0", 0, nil, "queue count 0 must be at least 1"},
		{"override queue out of range", "eth0", 4, map[int]int{4: 0}, "override for queue 4: queue must be in 0-3"},
		{"override negative queue", "eth0", 4, map[int]int{-1: 0}, "override for queue -1"},
		{"override cpu not allowed", "eth0", 4, map[int]int{1: 9}, "override queue 1 -> cpu 9: cpu must be in the allowed set 0-1"},
		{"bad device name", "eth/0", 1, nil, `interface name "eth/0" contains`},
		{"empty device name", "", 1, nil, "interface name is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Plan(tc.dev, tc.queues, tc.override)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Plan error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	empty := Planner{Proc: "testdata/ixgbe", Sys: t.TempDir(), Allowed: []int{}}
	if _, err := empty.Plan("eth0", 1, nil); err == nil || !strings.Contains(err.Error(), "allowed cpu set is empty") {
		t.Fatalf("Plan with no allowed cpus: error = %v", err)
	}
}

// TestPlannerProcessAffinity runs the default path: the allowed set comes
// from sched_getaffinity, so every planned CPU must be one the process may use.
func TestPlannerProcessAffinity(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	p := Planner{Proc: "testdata/virtio", Sys: sysTree(t, "veth9", "", ""), Kind: "veth"}
	got, err := p.Plan("veth9", 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if !slices.Contains(allowed, a.CPU) {
			t.Errorf("queue %d planned on cpu %d outside the allowed set %v", a.Queue, a.CPU, allowed)
		}
		if want := "spread over allowed cpus " + formatCPUList(allowed); !strings.HasSuffix(a.Reason, want) {
			t.Errorf("queue %d reason %q, want suffix %q", a.Queue, a.Reason, want)
		}
	}
}
