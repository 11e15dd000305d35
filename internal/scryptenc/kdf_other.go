//go:build !amd64

package scryptenc

const haveBlockMix = false

func blockMix(in, out *uint32, r int)       { panic("unreachable") }
func blockMixXor(in, v, out *uint32, r int) { panic("unreachable") }

const haveBlockMix2 = false

func blockMix2(inA, outA, inB, outB *uint32, r int)            { panic("unreachable") }
func blockMixXor2(inA, vA, outA, inB, vB, outB *uint32, r int) { panic("unreachable") }

const haveBlockMix4 = false

func blockMix4(p *[12]*uint32, r int) { panic("unreachable") }
