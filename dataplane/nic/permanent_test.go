package nic

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/vishvananda/netns"
)

// TestWantLeavesPermanentEntriesAlone: asking for resolution of a next hop
// that an operator pinned with a permanent entry must not touch it. (An
// NTF_USE request to such an entry turns it INCOMPLETE, then FAILED, and
// the director dropped traffic until it was fixed.)
func TestWantLeavesPermanentEntriesAlone(t *testing.T) {
	testsupport.RequirePrivileged(t, testsupport.NetNS, testsupport.IPRoute)
	name := fmt.Sprintf("afvs-nic-perm-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ip := func(a ...string) string {
		out, err := exec.Command("ip", append([]string{"-n", name}, a...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", a, err, out)
		}
		return string(out)
	}
	ip("link", "add", "a0", "type", "veth", "peer", "name", "b0")
	ip("link", "set", "a0", "up")
	ip("link", "set", "b0", "up")
	ip("addr", "add", "198.18.1.1/24", "dev", "a0")
	ip("neigh", "replace", "198.18.1.2", "lladdr", "02:00:00:00:00:09", "dev", "a0", "nud", "permanent")
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	k, err := Open(h)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ifc, err := k.Lookup("a0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := k.Neighbors(NeighborsOptions{Refresh: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	addr := netip.MustParseAddr("198.18.1.2")
	n.Want(ifc.Index, addr) // before the cache has even listed the entry
	time.Sleep(1500 * time.Millisecond)
	if out := ip("neigh", "show", "198.18.1.2"); !strings.Contains(out, "PERMANENT") || !strings.Contains(out, "02:00:00:00:00:09") {
		t.Fatalf("the permanent entry was changed: %s", out)
	}
	if mac, ok := n.Lookup(ifc.Index, addr); !ok || mac != [6]byte{2, 0, 0, 0, 0, 9} {
		t.Fatalf("Lookup = %x, %v; want the permanent entry's MAC", mac, ok)
	}
}
