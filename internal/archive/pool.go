package archive

import (
	"sync"

	"golang.org/x/sync/semaphore"
)

// BufferPool holds chunk buffers for readers that take turns, such as the
// archives of a backup chain, read one after another. Each reader given
// the pool (ReaderOptions.Buffers) draws its chunk buffers from it instead
// of holding its own, so the next reader can start while the one before
// it drains: it takes the buffers as they come back. Together they hold
// no more than one reader would, and the buffers, already faulted in, are
// reused rather than allocated again.
//
// Only one reader may be taking buffers at a time (each starts once the
// one before it has read its whole input, Reader.InputRead); two readers
// taking buffers could each hold some while waiting for the rest.
//
// The zero BufferPool is ready for use: the first reader to plan its
// memory sizes it, and its share of its budget for chunk buffers becomes
// the pool's.
type BufferPool struct {
	mu     sync.Mutex    // guards the sizing; the fields do not change after
	slots  chan struct{} // one token per chunk buffer in use
	free   chan []byte   // released chunk buffers
	memory *semaphore.Weighted
	budget int64 // bytes of chunk buffers that may exist at once
}

// size sets the pool's size once: buffers chunk buffers in use at once,
// budget bytes of them allocated, up to spare of them kept for reuse.
func (p *BufferPool) size(buffers int, budget int64, spare int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.slots == nil {
		p.slots = make(chan struct{}, buffers)
		p.free = make(chan []byte, spare)
		p.budget = budget
		p.memory = semaphore.NewWeighted(budget)
	}
}

// Drain lets go of the idle buffers, for the collector to return them. A
// nil pool has none.
func (p *BufferPool) Drain() {
	if p == nil {
		return
	}
	p.mu.Lock()
	free, memory := p.free, p.memory
	p.mu.Unlock()
	for free != nil {
		select {
		case b := <-free:
			memory.Release(int64(cap(b)))
		default:
			return
		}
	}
}
