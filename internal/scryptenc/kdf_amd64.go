package scryptenc

import "golang.org/x/sys/cpu"

// SSE2 is part of amd64 itself, so no CPU check is needed. Salsa20/8 is
// bound by the latency of its dependency chain, not by instruction count:
// independent states in the other lanes of wider registers (blockMix2,
// blockMix4) ride along almost free, and AVX-512's one-instruction rotate
// shortens the chain itself (blockMix4 runs four states in 0.77 times the
// time blockMixXor takes for one, on an AMD EPYC of 2026).
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

// haveBlockMix4: the CPU has AVX-512, for four derivations at once.
var haveBlockMix4 = cpu.X86.HasAVX512F

// blockMix4 is blockMix of (ins[k] XOR xors[k]) into outs[k] on four
// independent lanes at once; p holds ins, xors, outs.
//
//go:noescape
func blockMix4(p *[12]*uint32, r int)
