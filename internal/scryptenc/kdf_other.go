//go:build !amd64

package scryptenc

const haveBlockMix = false

func blockMix(in, out *uint32, r int)       { panic("unreachable") }
func blockMixXor(in, v, out *uint32, r int) { panic("unreachable") }
