#include "textflag.h"

// Salsa20/8 on four SSE2 registers holding the matrix diagonals
// (X0 = words 0,5,10,15; X1 = 4,9,14,3; X2 = 8,13,2,7; X3 = 12,1,6,11),
// the layout used by the scrypt tool's SSE2 code. X4, X5 are scratch.

// D ^= rotl(A + B, n), with m = 32 - n
#define QR(A, B, D, n, m) \
	MOVO  A, X4; \
	PADDL B, X4; \
	MOVO  X4, X5; \
	PSLLL $n, X4; \
	PSRLL $m, X5; \
	PXOR  X4, D; \
	PXOR  X5, D

// A column round, then a row round on the rotated diagonals.
#define DOUBLEROUND \
	QR(X0, X3, X1, 7, 25); \
	QR(X1, X0, X2, 9, 23); \
	QR(X2, X1, X3, 13, 19); \
	QR(X3, X2, X0, 18, 14); \
	PSHUFL $0x93, X1, X1; \
	PSHUFL $0x4E, X2, X2; \
	PSHUFL $0x39, X3, X3; \
	QR(X0, X1, X3, 7, 25); \
	QR(X3, X0, X2, 9, 23); \
	QR(X2, X3, X1, 13, 19); \
	QR(X1, X2, X0, 18, 14); \
	PSHUFL $0x39, X1, X1; \
	PSHUFL $0x4E, X2, X2; \
	PSHUFL $0x93, X3, X3

// X = salsa20/8(X); the input is kept in X8..X11 for the feed-forward.
#define SALSA8 \
	MOVO X0, X8; \
	MOVO X1, X9; \
	MOVO X2, X10; \
	MOVO X3, X11; \
	DOUBLEROUND; \
	DOUBLEROUND; \
	DOUBLEROUND; \
	DOUBLEROUND; \
	PADDL X8, X0; \
	PADDL X9, X1; \
	PADDL X10, X2; \
	PADDL X11, X3

#define XORIN(off, src) \
	MOVOU off+0(src), X4; \
	PXOR  X4, X0; \
	MOVOU off+16(src), X4; \
	PXOR  X4, X1; \
	MOVOU off+32(src), X4; \
	PXOR  X4, X2; \
	MOVOU off+48(src), X4; \
	PXOR  X4, X3

#define STORE(dst) \
	MOVOU X0, 0(dst); \
	MOVOU X1, 16(dst); \
	MOVOU X2, 32(dst); \
	MOVOU X3, 48(dst)

// func blockMix(in, out *uint32, r int)
TEXT ·blockMix(SB), NOSPLIT, $0-24
	MOVQ in+0(FP), SI
	MOVQ out+8(FP), DI
	MOVQ r+16(FP), CX
	MOVQ CX, AX
	SHLQ $6, AX               // AX = 64r, half the buffer
	LEAQ (DI)(AX*1), R9       // odd outputs go to the second half
	LEAQ -64(SI)(AX*2), BX    // X starts as the last block
	MOVOU 0(BX), X0
	MOVOU 16(BX), X1
	MOVOU 32(BX), X2
	MOVOU 48(BX), X3

loop:
	XORIN(0, SI)
	SALSA8
	STORE(DI)
	XORIN(64, SI)
	SALSA8
	STORE(R9)
	ADDQ $128, SI
	ADDQ $64, DI
	ADDQ $64, R9
	DECQ CX
	JNZ  loop
	RET

// func blockMixXor(in, v, out *uint32, r int)
TEXT ·blockMixXor(SB), NOSPLIT, $0-32
	MOVQ in+0(FP), SI
	MOVQ v+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ r+24(FP), CX
	MOVQ CX, AX
	SHLQ $6, AX
	LEAQ (DI)(AX*1), R9
	LEAQ -64(SI)(AX*2), BX
	LEAQ -64(DX)(AX*2), R10
	MOVOU 0(BX), X0
	MOVOU 16(BX), X1
	MOVOU 32(BX), X2
	MOVOU 48(BX), X3
	XORIN(0, R10)

loopx:
	XORIN(0, SI)
	XORIN(0, DX)
	SALSA8
	STORE(DI)
	XORIN(64, SI)
	XORIN(64, DX)
	SALSA8
	STORE(R9)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $64, DI
	ADDQ $64, R9
	DECQ CX
	JNZ  loopx
	RET

