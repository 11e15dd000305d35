package scryptenc

import "golang.org/x/sys/cpu"

// SSE2 is part of amd64 itself, so no CPU check is needed. (An AVX-512
// variant with one-instruction rotates measured only 3% faster: salsa20/8
// is bound by the latency of its dependency chain, not by instruction count.)
const haveBlockMix = true

// blockMix is scrypt's BlockMix with salsa20/8 over 2r blocks of in,
// writing the even outputs to out's first half and the odd to its second.
//
//go:noescape
func blockMix(in, out *uint32, r int)

// blockMixXor is blockMix of (in XOR v), without storing the XOR.
//
//go:noescape
func blockMixXor(in, v, out *uint32, r int)

// haveBlockMix2: the CPU has AVX2, for two derivations at once.
var haveBlockMix2 = cpu.X86.HasAVX2

// blockMix2 is blockMix on two independent inputs at once.
//
//go:noescape
func blockMix2(inA, outA, inB, outB *uint32, r int)

// blockMixXor2 is blockMixXor on two independent inputs at once.
//
//go:noescape
func blockMixXor2(inA, vA, outA, inB, vB, outB *uint32, r int)
