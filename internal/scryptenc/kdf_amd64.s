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


// Two derivations at once on AVX2: each 256-bit register holds the same
// diagonal row of two independent salsa states, derivation A in the low
// 128-bit lane and B in the high one. VPSHUFD shuffles within each lane,
// so the rounds are the SSE2 ones, on both states in the same latency:
// salsa20/8 is bound by its dependency chain, so a second, independent
// chain in the other lane comes almost free. Y4, Y5 are scratch; Y8..Y11
// keep the input for the feed-forward.

#define QR2(A, B, D, n, m) \
	VPADDD B, A, Y4; \
	VPSLLD $n, Y4, Y5; \
	VPSRLD $m, Y4, Y4; \
	VPXOR  Y5, D, D; \
	VPXOR  Y4, D, D

#define DOUBLEROUND2 \
	QR2(Y0, Y3, Y1, 7, 25); \
	QR2(Y1, Y0, Y2, 9, 23); \
	QR2(Y2, Y1, Y3, 13, 19); \
	QR2(Y3, Y2, Y0, 18, 14); \
	VPSHUFD $0x93, Y1, Y1; \
	VPSHUFD $0x4E, Y2, Y2; \
	VPSHUFD $0x39, Y3, Y3; \
	QR2(Y0, Y1, Y3, 7, 25); \
	QR2(Y3, Y0, Y2, 9, 23); \
	QR2(Y2, Y3, Y1, 13, 19); \
	QR2(Y1, Y2, Y0, 18, 14); \
	VPSHUFD $0x39, Y1, Y1; \
	VPSHUFD $0x4E, Y2, Y2; \
	VPSHUFD $0x93, Y3, Y3

#define SALSA8_2 \
	VMOVDQA Y0, Y8; \
	VMOVDQA Y1, Y9; \
	VMOVDQA Y2, Y10; \
	VMOVDQA Y3, Y11; \
	DOUBLEROUND2; \
	DOUBLEROUND2; \
	DOUBLEROUND2; \
	DOUBLEROUND2; \
	VPADDD Y8, Y0, Y0; \
	VPADDD Y9, Y1, Y1; \
	VPADDD Y10, Y2, Y2; \
	VPADDD Y11, Y3, Y3

// Y0..Y3 ^= the 64-byte block at off(a) (low lanes) and off(b) (high).
#define XORIN2(off, a, b) \
	VMOVDQU     off+0(a), X4; \
	VINSERTI128 $1, off+0(b), Y4, Y4; \
	VPXOR       Y4, Y0, Y0; \
	VMOVDQU     off+16(a), X4; \
	VINSERTI128 $1, off+16(b), Y4, Y4; \
	VPXOR       Y4, Y1, Y1; \
	VMOVDQU     off+32(a), X4; \
	VINSERTI128 $1, off+32(b), Y4, Y4; \
	VPXOR       Y4, Y2, Y2; \
	VMOVDQU     off+48(a), X4; \
	VINSERTI128 $1, off+48(b), Y4, Y4; \
	VPXOR       Y4, Y3, Y3

#define LOAD2(a, b) \
	VMOVDQU     0(a), X0; \
	VINSERTI128 $1, 0(b), Y0, Y0; \
	VMOVDQU     16(a), X1; \
	VINSERTI128 $1, 16(b), Y1, Y1; \
	VMOVDQU     32(a), X2; \
	VINSERTI128 $1, 32(b), Y2, Y2; \
	VMOVDQU     48(a), X3; \
	VINSERTI128 $1, 48(b), Y3, Y3

#define STORE2(a, b) \
	VMOVDQU      X0, 0(a); \
	VEXTRACTI128 $1, Y0, 0(b); \
	VMOVDQU      X1, 16(a); \
	VEXTRACTI128 $1, Y1, 16(b); \
	VMOVDQU      X2, 32(a); \
	VEXTRACTI128 $1, Y2, 32(b); \
	VMOVDQU      X3, 48(a); \
	VEXTRACTI128 $1, Y3, 48(b)

// func blockMix2(inA, outA, inB, outB *uint32, r int)
TEXT ·blockMix2(SB), NOSPLIT, $0-40
	MOVQ inA+0(FP), SI
	MOVQ outA+8(FP), DI
	MOVQ inB+16(FP), R11
	MOVQ outB+24(FP), R12
	MOVQ r+32(FP), CX
	MOVQ CX, AX
	SHLQ $6, AX
	LEAQ (DI)(AX*1), R9
	LEAQ (R12)(AX*1), R13
	LEAQ -64(SI)(AX*2), BX
	LEAQ -64(R11)(AX*2), R10
	LOAD2(BX, R10)

loop2:
	XORIN2(0, SI, R11)
	SALSA8_2
	STORE2(DI, R12)
	XORIN2(64, SI, R11)
	SALSA8_2
	STORE2(R9, R13)
	ADDQ $128, SI
	ADDQ $128, R11
	ADDQ $64, DI
	ADDQ $64, R9
	ADDQ $64, R12
	ADDQ $64, R13
	DECQ CX
	JNZ  loop2
	VZEROUPPER
	RET

// func blockMixXor2(inA, vA, outA, inB, vB, outB *uint32, r int)
TEXT ·blockMixXor2(SB), NOSPLIT, $0-56
	MOVQ inA+0(FP), SI
	MOVQ vA+8(FP), DX
	MOVQ outA+16(FP), DI
	MOVQ inB+24(FP), R11
	MOVQ vB+32(FP), R8
	MOVQ outB+40(FP), R12
	MOVQ r+48(FP), CX
	MOVQ CX, AX
	SHLQ $6, AX
	LEAQ (DI)(AX*1), R9
	LEAQ (R12)(AX*1), R13
	LEAQ -64(SI)(AX*2), BX
	LEAQ -64(R11)(AX*2), R10
	LOAD2(BX, R10)
	LEAQ -64(DX)(AX*2), BX
	LEAQ -64(R8)(AX*2), R10
	XORIN2(0, BX, R10)

loopx2:
	XORIN2(0, SI, R11)
	XORIN2(0, DX, R8)
	SALSA8_2
	STORE2(DI, R12)
	XORIN2(64, SI, R11)
	XORIN2(64, DX, R8)
	SALSA8_2
	STORE2(R9, R13)
	ADDQ $128, SI
	ADDQ $128, DX
	ADDQ $128, R11
	ADDQ $128, R8
	ADDQ $64, DI
	ADDQ $64, R9
	ADDQ $64, R12
	ADDQ $64, R13
	DECQ CX
	JNZ  loopx2
	VZEROUPPER
	RET


// Four derivations at once on AVX-512: as the AVX2 code, with each 512-bit
// register holding the same diagonal row of four independent states, one
// per 128-bit lane (A, B, C, D from the lowest), and one-instruction
// rotates. The dependency chain is the same, so the two more states ride
// along in its latency. Z4 is scratch; Z8..Z11 keep the input for the
// feed-forward.

#define QR4(A, B, D, n) \
	VPADDD B, A, Z4; \
	VPROLD $n, Z4, Z4; \
	VPXORD Z4, D, D

#define DOUBLEROUND4 \
	QR4(Z0, Z3, Z1, 7); \
	QR4(Z1, Z0, Z2, 9); \
	QR4(Z2, Z1, Z3, 13); \
	QR4(Z3, Z2, Z0, 18); \
	VPSHUFD $0x93, Z1, Z1; \
	VPSHUFD $0x4E, Z2, Z2; \
	VPSHUFD $0x39, Z3, Z3; \
	QR4(Z0, Z1, Z3, 7); \
	QR4(Z3, Z0, Z2, 9); \
	QR4(Z2, Z3, Z1, 13); \
	QR4(Z1, Z2, Z0, 18); \
	VPSHUFD $0x39, Z1, Z1; \
	VPSHUFD $0x4E, Z2, Z2; \
	VPSHUFD $0x93, Z3, Z3

#define SALSA8_4 \
	VMOVDQA64 Z0, Z8; \
	VMOVDQA64 Z1, Z9; \
	VMOVDQA64 Z2, Z10; \
	VMOVDQA64 Z3, Z11; \
	DOUBLEROUND4; \
	DOUBLEROUND4; \
	DOUBLEROUND4; \
	DOUBLEROUND4; \
	VPADDD Z8, Z0, Z0; \
	VPADDD Z9, Z1, Z1; \
	VPADDD Z10, Z2, Z2; \
	VPADDD Z11, Z3, Z3

// The lanes' pointers are an array of twelve: four inputs, four blocks
// to XOR in (zeros for a lane that XORs nothing), four outputs. R8..R11
// hold one group of four at a time.
#define INS \
	MOVQ 0(AX), R8; \
	MOVQ 8(AX), R9; \
	MOVQ 16(AX), R10; \
	MOVQ 24(AX), R11

#define XORS \
	MOVQ 32(AX), R8; \
	MOVQ 40(AX), R9; \
	MOVQ 48(AX), R10; \
	MOVQ 56(AX), R11

#define OUTS \
	MOVQ 64(AX), R8; \
	MOVQ 72(AX), R9; \
	MOVQ 80(AX), R10; \
	MOVQ 88(AX), R11

// Z4 = the 16 bytes at off+idx of R8..R11, one per lane.
#define GATHER4(off, idx) \
	VMOVDQU32    off(R8)(idx*1), X4; \
	VINSERTI32X4 $1, off(R9)(idx*1), Z4, Z4; \
	VINSERTI32X4 $2, off(R10)(idx*1), Z4, Z4; \
	VINSERTI32X4 $3, off(R11)(idx*1), Z4, Z4

// Z0..Z3 ^= the 64-byte block at off+idx of each of R8..R11.
#define XORIN4(off, idx) \
	GATHER4(off+0, idx); \
	VPXORD Z4, Z0, Z0; \
	GATHER4(off+16, idx); \
	VPXORD Z4, Z1, Z1; \
	GATHER4(off+32, idx); \
	VPXORD Z4, Z2, Z2; \
	GATHER4(off+48, idx); \
	VPXORD Z4, Z3, Z3

#define SCATTER4(Z, off, idx) \
	VEXTRACTI32X4 $0, Z, off(R8)(idx*1); \
	VEXTRACTI32X4 $1, Z, off(R9)(idx*1); \
	VEXTRACTI32X4 $2, Z, off(R10)(idx*1); \
	VEXTRACTI32X4 $3, Z, off(R11)(idx*1)

#define STORE4(idx) \
	SCATTER4(Z0, 0, idx); \
	SCATTER4(Z1, 16, idx); \
	SCATTER4(Z2, 32, idx); \
	SCATTER4(Z3, 48, idx)

// func blockMix4(p *[12]*uint32, r int)
TEXT ·blockMix4(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ r+8(FP), CX
	MOVQ CX, BX
	SHLQ $6, BX               // BX = 64r: the odd outputs' offset
	LEAQ -64(BX)(BX*1), SI    // SI = 128r-64: the last 64-byte block
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	INS
	XORIN4(0, SI)
	XORS
	XORIN4(0, SI)
	XORQ DI, DI               // input offset
	XORQ DX, DX               // even output offset

loop4:
	INS
	XORIN4(0, DI)
	XORS
	XORIN4(0, DI)
	SALSA8_4
	OUTS
	STORE4(DX)
	INS
	XORIN4(64, DI)
	XORS
	XORIN4(64, DI)
	SALSA8_4
	OUTS
	LEAQ (DX)(BX*1), R12
	STORE4(R12)
	ADDQ $128, DI
	ADDQ $64, DX
	DECQ CX
	JNZ  loop4
	VZEROUPPER
	RET
