package xdpprog

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afvs/afvs/internal/testsupport"
	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
)

const (
	helperEnvNS = "AFVS_XDPPROG_HELPER_NS"
	helperEnvIf = "AFVS_XDPPROG_HELPER_IF"
	servicePort = 7777
)

// TestMain lets the test binary double as the helper process that
// TestAttachmentDiesWithProcess kills.
func TestMain(m *testing.M) {
	if ns := os.Getenv(helperEnvNS); ns != "" {
		if err := attachHelper(ns, os.Getenv(helperEnvIf)); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// attachHelper attaches Steering to ifName inside namespace nsName, says
// which program it attached, and waits to be killed. It gives up after a
// minute so that it cannot outlive a parent that died itself.
func attachHelper(nsName, ifName string) error {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return err
	}
	var (
		s *Steering
		a Attachment
	)
	err = inNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		if s, err = LoadSteering(4, 1); err != nil {
			return err
		}
		if err := s.SetServices(helperServices()); err != nil {
			return err
		}
		if err := s.SetOwnerMACs([6]byte(ifi.HardwareAddr)); err != nil {
			return err
		}
		a, err = s.Attach(ifi.Index, ModeAuto)
		return err
	})
	if err != nil {
		return err
	}
	info, err := s.program().Info()
	if err != nil {
		return err
	}
	id, _ := info.ID()
	fmt.Printf("attached %d %s\n", id, a.Mode())
	time.Sleep(time.Minute)
	return nil
}

func helperServices() []ServiceKey {
	return []ServiceKey{{Addr: vethAddrB, Proto: ipProtoUDP, Port: servicePort}}
}

func progID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel did not report the program id")
	}
	return uint32(id)
}

// TestAttachmentModes attaches Steering to a veth in each mode, checks
// what the kernel reports, that traffic still flows (no socket: every
// match falls back to XDP_PASS), and that Close detaches.
func TestAttachmentModes(t *testing.T) {
	testsupport.RequirePrivileged(t)
	for _, tc := range []struct {
		mode     Mode
		want     Mode
		attached uint8
	}{
		{ModeAuto, ModeNative, nl.XDP_ATTACHED_DRV}, // veth has native XDP
		{ModeNative, ModeNative, nl.XDP_ATTACHED_DRV},
		{ModeGeneric, ModeGeneric, nl.XDP_ATTACHED_SKB},
	} {
		t.Run("mode="+tc.mode.String(), func(t *testing.T) {
			p := newVethPair(t)
			s, err := LoadSteering(4, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SetServices(helperServices()); err != nil {
				t.Fatal(err)
			}
			if err := s.SetOwnerMACs(p.macB); err != nil {
				t.Fatal(err)
			}
			var a Attachment
			err = inNS(p.nsB, func() error {
				var err error
				a, err = s.Attach(p.idxB, tc.mode)
				return err
			})
			if err != nil {
				t.Fatalf("Attach(%d, %s): %v", p.idxB, tc.mode, err)
			}
			t.Cleanup(func() { a.Close() })
			if a.Mode() != tc.want {
				t.Errorf("attached in %s mode, want %s", a.Mode(), tc.want)
			}
			x := p.xdpState(t)
			if !x.Attached || x.ProgId != progID(t, s.program()) || x.AttachMode != uint32(tc.attached) {
				t.Errorf("kernel reports attached=%v prog=%d mode=%d, want prog %d mode %d",
					x.Attached, x.ProgId, x.AttachMode, progID(t, s.program()), tc.attached)
			}

			if err := p.udpReaches(t, servicePort); err != nil {
				t.Errorf("service traffic with program attached and no socket: %v", err)
			}
			st, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.PassNoSocket == 0 || st.Redirected != 0 {
				t.Errorf("live counters %+v: want matched frames passed for lack of a socket", st)
			}

			if err := a.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			p.waitDetached(t)
		})
	}
}

func TestAttachRejectsBadInput(t *testing.T) {
	testsupport.RequirePrivileged(t)
	d, err := LoadDropSink()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Attach(0, ModeAuto); err == nil || !strings.Contains(err.Error(), "ifindex 0 must be at least 1") {
		t.Errorf("Attach(0): error %v, want ifindex error", err)
	}
	if _, err := d.Attach(1, Mode(9)); err == nil || !strings.Contains(err.Error(), "mode 9") {
		t.Errorf("Attach mode 9: error %v, want mode error", err)
	}
	if _, err := ParseMode("fast"); err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf("ParseMode(fast): error %v", err)
	}
	for _, m := range []Mode{ModeAuto, ModeNative, ModeGeneric} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if err := (Attachment{}).Close(); err != nil {
		t.Errorf("closing a zero Attachment: %v", err)
	}
}

// TestAttachmentDiesWithProcess runs a helper process that attaches
// Steering to a veth and SIGKILLs it: the bpf_link dies with the process,
// the veth is left without a program and traffic keeps flowing.
func TestAttachmentDiesWithProcess(t *testing.T) {
	testsupport.RequirePrivileged(t)
	p := newVethPair(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnvNS+"="+p.nsBName, helperEnvIf+"="+p.ifB)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper did not report its attachment: %v", err)
	}
	var id uint32
	var mode string
	if _, err := fmt.Sscanf(line, "attached %d %s", &id, &mode); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	if x := p.xdpState(t); !x.Attached || x.ProgId != id {
		t.Fatalf("helper reported program %d, kernel shows attached=%v prog=%d", id, x.Attached, x.ProgId)
	}
	t.Logf("helper pid %d attached program %d in %s mode", cmd.Process.Pid, id, mode)

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill helper: %v", err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper exit: %v, want killed", err)
	}
	p.waitDetached(t)
	if err := p.udpReaches(t, servicePort); err != nil {
		t.Errorf("traffic after the director was killed: %v", err)
	}
}
