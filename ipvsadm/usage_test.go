package ipvsadm

import (
	"bytes"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	if err := Usage(&buf, "afvsadm"); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	// The synopsis is ipvsadm's, so operators find the forms they know.
	for _, line := range []string{
		"  afvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n",
		"  afvsadm -D virtual-service\n",
		"  afvsadm -C\n",
		"  afvsadm -R\n",
		"  afvsadm -S [-n]\n",
		"  afvsadm -a|e virtual-service -r server-address [options]\n",
		"  afvsadm -d virtual-service -r server-address\n",
		"  afvsadm -L|l [virtual-service] [options]\n",
		"  afvsadm -Z [virtual-service]\n",
		"  afvsadm --set tcp tcpfin udp\n",
		"  afvsadm -h\n",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("usage lacks synopsis line %q", line)
		}
	}
	// Every option the parser knows is documented, supported or not.
	for _, sp := range specs {
		if sp.long != "" && !strings.Contains(text, "--"+sp.long) {
			t.Errorf("usage does not mention --%s", sp.long)
		}
	}
	if strings.Contains(text, "%!") {
		t.Errorf("usage has a formatting error:\n%s", text)
	}
	buf.Reset()
	if err := Usage(&buf, " "); err != nil || !strings.Contains(buf.String(), "  afvsadm -C\n") {
		t.Errorf("blank program name not defaulted: %v", err)
	}
}
