package archive

import "syscall"

// chunkBuffer allocates a chunk-sized buffer and asks for transparent huge
// pages on it: filling 100 MiB of fresh memory 4 KiB page by page costs
// hundreds of milliseconds in page faults, on the path of every chunk.
func chunkBuffer(size, capacity int) []byte {
	b := make([]byte, size, capacity)
	syscall.Madvise(b[:capacity], syscall.MADV_HUGEPAGE) // a hint; without it, plain pages
	return b
}
