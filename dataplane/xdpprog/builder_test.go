package xdpprog

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

func TestBuilderLabels(t *testing.T) {
	b := newBuilder()
	b.emit(asm.JEq.Imm(asm.R1, 0, "second"), asm.Ja.Label("first"))
	b.label("first")
	b.label("second") // lands on the same instruction as "first"
	b.ret(xdpPass)
	insns, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	if insns[0].Reference() != "first" || insns[1].Reference() != "first" {
		t.Errorf("references %q, %q; want both rewritten to the placed label \"first\"", insns[0].Reference(), insns[1].Reference())
	}
	if insns[2].Symbol() != "first" {
		t.Errorf("label placed on %v, want the instruction after the jumps", insns[2])
	}

	for _, tc := range []struct {
		name  string
		build func(*builder)
		want  string
	}{
		{"undefined", func(b *builder) { b.emit(asm.Ja.Label("nowhere")); b.ret(0) }, `undefined label "nowhere"`},
		{"twice", func(b *builder) { b.label("x"); b.ret(0); b.label("x"); b.ret(0) }, `label "x" defined twice`},
		{"dangling", func(b *builder) { b.ret(0); b.label("end") }, `label "end" at end of program`},
	} {
		b := newBuilder()
		tc.build(b)
		if _, err := b.finish(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
