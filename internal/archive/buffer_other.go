//go:build !linux

package archive

func chunkBuffer(size, capacity int) []byte { return make([]byte, size, capacity) }
