#include "textflag.h"

// func candidatesAsm(buckets unsafe.Pointer, pl *placement, cand *uint32, n int)
//
// For each of n placements {b1, b2, tag}: compare the tag with the 16
// dwords of each candidate bucket's line (PCMPEQL), pack the results to a
// 16-bit mask (PACKSSLW, PACKSSWB, PMOVMSKB), keep the 14 tag lanes, and
// pick the slot as store.candidate does.
TEXT ·candidatesAsm(SB), NOSPLIT|NOFRAME, $0-32
	MOVQ buckets+0(FP), SI
	MOVQ pl+8(FP), DI
	MOVQ cand+16(FP), DX
	MOVQ n+24(FP), CX
	TESTQ CX, CX
	JLE done
	MOVL $-1, R13
loop:
	MOVL 8(DI), AX
	MOVQ AX, X0
	PSHUFL $0, X0, X0

	MOVL 0(DI), BX
	MOVQ BX, R8
	SHLQ $6, R8
	ADDQ SI, R8
	MOVOU 0(R8), X1
	MOVOU 16(R8), X2
	MOVOU 32(R8), X3
	MOVOU 48(R8), X4
	PCMPEQL X0, X1
	PCMPEQL X0, X2
	PCMPEQL X0, X3
	PCMPEQL X0, X4
	PACKSSLW X2, X1
	PACKSSLW X4, X3
	PACKSSWB X3, X1
	PMOVMSKB X1, R9
	ANDL $0x3fff, R9

	MOVL 4(DI), R11
	MOVQ R11, R8
	SHLQ $6, R8
	ADDQ SI, R8
	MOVOU 0(R8), X5
	MOVOU 16(R8), X6
	MOVOU 32(R8), X7
	MOVOU 48(R8), X8
	PCMPEQL X0, X5
	PCMPEQL X0, X6
	PCMPEQL X0, X7
	PCMPEQL X0, X8
	PACKSSLW X6, X5
	PACKSSLW X8, X7
	PACKSSWB X7, X5
	PMOVMSKB X5, R10
	ANDL $0x3fff, R10

	// slot = b1*14 + tz(m1 | 1<<13), alt = b2*14 + tz(m2 | 1<<13)
	MOVL R9, AX
	ORL $0x2000, AX
	BSFL AX, AX
	IMUL3L $14, BX, BX
	ADDL AX, BX
	MOVL R10, AX
	ORL $0x2000, AX
	BSFL AX, AX
	IMUL3L $14, R11, R11
	ADDL AX, R11
	TESTL R9, R9
	CMOVLEQ R11, BX
	ORL R10, R9
	CMOVLEQ R13, BX
	MOVL BX, 0(DX)

	ADDQ $12, DI
	ADDQ $4, DX
	DECQ CX
	JNZ loop
done:
	RET
