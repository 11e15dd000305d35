package scryptenc

import (
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// allocScratch maps the 128·r·N-byte work area outside the Go heap and asks
// for transparent huge pages: faulting in 256 MiB page by page costs more
// than the derivation spends computing, and a backup derives a key per
// chunk. Areas are kept for reuse while derivations follow each other
// (faulting in fresh huge pages makes the kernel zero, and often compact,
// memory: seconds of system time over a restore), and unmapped when none
// was used for a while. An area holds passphrase-derived state only until
// the next derivation overwrites it whole (ROMix writes all of V before it
// reads any); unmapping gives it back zeroed to nobody else but the kernel.
func allocScratch(words int) (v []uint32, free func()) {
	size := words * 4
	mem := scratch.get(size)
	if mem == nil {
		var err error
		mem, err = syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			v := make([]uint32, words)
			return v, func() { clear(v) }
		}
		syscall.Madvise(mem, syscall.MADV_HUGEPAGE) // a hint; without it, plain pages
		faultIn(mem)
	}
	v = unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), words)
	return v, func() { scratch.put(mem) }
}

// faultIn touches every page of a fresh area, its parts on all cores at
// once. The kernel zeroes each page on its first touch; left to the
// derivation, that runs on one core, and on some virtual machines it
// costs more than the derivation itself (3 s per GiB has been seen, when
// the host backs guest memory only as it is touched). A backup's first
// keys, on which everything waits, then come twice as fast on two cores.
func faultIn(mem []byte) {
	parts := runtime.GOMAXPROCS(0)
	if parts < 2 {
		return
	}
	page := os.Getpagesize()
	step := (len(mem)/parts + page - 1) / page * page
	var wg sync.WaitGroup
	for off := 0; off < len(mem); off += step {
		part := mem[off:min(off+step, len(mem))]
		wg.Go(func() {
			for i := 0; i < len(part); i += page {
				part[i] = 0
			}
		})
	}
	wg.Wait()
}

// scratchIdle is how long unused areas are kept; maxIdleAreas how many.
const (
	scratchIdle  = 2 * time.Second
	maxIdleAreas = 4
)

var scratch scratchPool

type scratchPool struct {
	mu    sync.Mutex
	idle  [][]byte
	timer *time.Timer
}

func (p *scratchPool) get(size int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, m := range p.idle {
		if len(m) == size {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return m
		}
	}
	return nil
}

func (p *scratchPool) put(mem []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdleAreas {
		syscall.Munmap(mem)
		return
	}
	p.idle = append(p.idle, mem)
	if p.timer == nil {
		p.timer = time.AfterFunc(scratchIdle, p.release)
	} else {
		p.timer.Reset(scratchIdle)
	}
}

// release unmaps the idle areas.
func (p *scratchPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.idle {
		syscall.Munmap(m)
	}
	p.idle = nil
}
