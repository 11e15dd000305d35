//go:build !linux

package scryptenc

func allocScratch(words int) (v []uint32, free func()) {
	v = make([]uint32, words)
	return v, func() { clear(v) }
}
