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
	// The closing note names what afvs lacks; connection sync takes an
	// IPv6 group as well as an IPv4 one (--mcast-group ff02::8848).
	if note := "\n\nNot supported by afvs: --pe and --sctp-service. Connection sync runs in\n" +
		"the daemon (IPVS sync protocol version 1, on an IPv4 or IPv6 group).\n"; !strings.HasSuffix(text, note) {
		t.Errorf("usage does not end with %q:\n%s", note, text)
	}
	if strings.Contains(text, "%!") {
		t.Errorf("usage has a formatting error:\n%s", text)
	}
	buf.Reset()
	if err := Usage(&buf, " "); err != nil || !strings.Contains(buf.String(), "  afvsadm -C\n") {
		t.Errorf("blank program name not defaulted: %v", err)
	}
}
