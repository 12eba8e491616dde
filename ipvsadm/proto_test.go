package ipvsadm

import (
	"testing"

	"github.com/afvs/afvs/vs"
)

// TestProtoFromModel checks that ipvsadm's TCP and UDP are the model's
// protocols, that FWM and IP have no model protocol, and that the listing
// prints each as ipvsadm does.
func TestProtoFromModel(t *testing.T) {
	for _, c := range []struct {
		p    Proto
		want vs.Proto
		ok   bool
		str  string
	}{
		{TCP, vs.TCP, true, "TCP"},
		{UDP, vs.UDP, true, "UDP"},
		{FWM, 0, false, "FWM"},
		{IP, 0, false, "IP"},
		{Proto(99), 0, false, "?"},
	} {
		got, ok := c.p.VS()
		if got != c.want || ok != c.ok {
			t.Errorf("%s.VS() = %v, %v; want %v, %v", c.str, got, ok, c.want, c.ok)
		}
		if s := c.p.String(); s != c.str {
			t.Errorf("Proto(%d).String() = %q, want %q", uint8(c.p), s, c.str)
		}
	}
}
