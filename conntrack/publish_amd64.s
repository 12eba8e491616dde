//go:build amd64 && !race

#include "textflag.h"

// func storeWords(e *entry, w *entryWords)
TEXT ·storeWords(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ e+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ 0(SI), AX
	MOVQ AX, 0(DI)
	MOVQ 8(SI), AX
	MOVQ AX, 8(DI)
	MOVQ 16(SI), AX
	MOVQ AX, 16(DI)
	MOVQ 24(SI), AX
	MOVQ AX, 24(DI)
	MOVQ 32(SI), AX
	MOVQ AX, 32(DI)
	MOVQ 40(SI), AX
	MOVQ AX, 48(DI)
	MOVQ 48(SI), AX
	MOVQ AX, 56(DI)
	RET
