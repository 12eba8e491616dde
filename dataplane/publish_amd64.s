//go:build amd64 && !race

#include "textflag.h"

// func storeCounter(c *atomic.Uint64, v uint64)
TEXT ·storeCounter(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ c+0(FP), DI
	MOVQ v+8(FP), AX
	MOVQ AX, 0(DI)
	RET
