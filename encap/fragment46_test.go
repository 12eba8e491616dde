package encap

import (
	"bytes"
	"testing"

	"github.com/google/gopacket/layers"
)

// TestFragment4in6Refuses: what two fragments cannot carry, a DF packet,
// one with IP options, one that fits whole, or a second
// buffer without room for the outer header is refused, and the frame is
// left as it was.
func TestFragment4in6Refuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		s      spec
		mtu    int
		second int
	}{
		{"DF set", spec{df: true, payload: 1460}, 1500, 2048},
		{"three fragments needed", spec{payload: 1460}, 720, 2048},
		{"IP options", spec{payload: 1400, ipOpts: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}, 1420, 2048},
		{"fits whole", spec{payload: 100}, 1500, 2048},
		{"second buffer too small", spec{payload: 1460}, 1500, 30},
	} {
		orig := build(t, c.s)
		p := parse(t, orig)
		buf := make([]byte, 256+len(orig))
		copy(buf[256:], orig)
		before := append([]byte(nil), buf...)
		if _, _, _, ok := Fragment4in6(buf, 256, len(orig), &p, c.mtu, directorIP6, rsIP6, egressMAC, rsMAC, make([]byte, c.second)); ok {
			t.Errorf("%s: fragmented", c.name)
		}
		if !bytes.Equal(buf, before) {
			t.Errorf("%s: refused but changed the frame", c.name)
		}
	}
}

func TestFragment4in6Allocs(t *testing.T) {
	orig := build(t, spec{payload: 1460})
	p := parse(t, orig)
	buf := make([]byte, 256+len(orig))
	second := make([]byte, 2048)
	if a := testing.AllocsPerRun(100, func() {
		copy(buf[256:], orig)
		if _, _, _, ok := Fragment4in6(buf, 256, len(orig), &p, 1500, directorIP6, rsIP6, egressMAC, rsMAC, second); !ok {
			t.Fatal("not fragmented")
		}
	}); a != 0 {
		t.Fatalf("%v allocs per call", a)
	}
}
