package conntrack

import (
	"testing"
	"time"
)

// TestArmTemplate: ArmTemplate moves a template's expiry to now plus its
// timeout and leaves its control count as it was, so a template re-armed
// at 8 s with a 10 s timeout lives until 18 s and then expires with no
// connection holding it; a deleted template is not re-armed.
func TestArmTemplate(t *testing.T) {
	clock := &ManualClock{}
	tb, err := New(Config{Capacity: 64, Templates: 64, Timeouts: DefaultTimeouts(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	k := Key{Proto: ProtoUDP, VPort: 53}
	k.CAddr[15], k.VAddr[15] = 10, 1
	ref, res := tb.InsertTemplate(&k, 7, 10*time.Second)
	if res != Inserted {
		t.Fatalf("insert: %v", res)
	}
	clock.Advance(8 * time.Second)
	if !tb.ArmTemplate(ref) {
		t.Fatal("ArmTemplate of a live template failed")
	}
	clock.Advance(9 * time.Second) // 17 s: past the first 10 s
	if d, _, ok := tb.LookupTemplate(&k); !ok || d != 7 {
		t.Fatalf("at 17 s: lookup %d %v, want the re-armed template", d, ok)
	}
	clock.Advance(time.Second + time.Millisecond) // past 18 s
	if _, _, ok := tb.LookupTemplate(&k); ok {
		t.Fatal("past 18 s the template still matches: ArmTemplate left a connection holding it, or armed it too far")
	}
	if tb.ArmTemplate(ref) {
		t.Fatal("ArmTemplate re-armed an expired template")
	}
	ref, _ = tb.InsertTemplate(&k, 7, 10*time.Second)
	tb.DeleteTemplate(ref)
	if tb.ArmTemplate(ref) {
		t.Fatal("ArmTemplate re-armed a deleted template")
	}
}
