package scryptenc

import (
	"syscall"
	"unsafe"
)

// allocScratch maps the 128·r·N-byte work area outside the Go heap and asks
// for transparent huge pages: faulting in 256 MiB page by page costs more
// than the derivation spends computing, and a backup derives a key per
// chunk. free unmaps the area at once instead of leaving it to the garbage
// collector; the kernel zeroes the pages before anyone else gets them, so
// the passphrase-derived state in it needs no wiping of our own.
func allocScratch(words int) (v []uint32, free func()) {
	size := words * 4
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		v := make([]uint32, words)
		return v, func() { clear(v) }
	}
	syscall.Madvise(mem, syscall.MADV_HUGEPAGE) // a hint; without it, plain pages
	v = unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), words)
	return v, func() { syscall.Munmap(mem) }
}
