package scryptenc

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
