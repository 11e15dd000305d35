package scryptenc

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Lanes is how many key derivations one core runs at once: 2 with AVX2
// (blockMix2), else 1. Callers that derive many keys (one per chunk) run
// Lanes × cores derivations concurrently, so that each core can fill its
// lanes.
var Lanes = func() int {
	if haveBlockMix2 {
		return 2
	}
	return 1
}()

// The derivations callers ask for concurrently (pairedKDF) are run by at
// most one runner per core, each with two lanes: a step of each lane's
// derivation per two-lane BlockMix. Two derivations in one runner cost
// about what one alone does (salsa20/8 waits on its dependency chain; the
// other lane fills the gaps), and a derivation that joins a runner's free
// lane takes about as long as it would alone, whenever it joins: the lanes
// need not start together. So a request joins a running runner's free lane
// before it takes a core of its own, and takes a core only when every lane
// is busy. The cores a restore's derivations then leave free decompress,
// hash and write; when requests come one at a time they run as they would
// alone, with no waiting for a partner. More runners than cores would only
// time-slice, finish the key needed next later, and fault in more fresh
// work areas (each 128·r·N bytes).
//
// Requests are taken oldest first: a reader asks for chunk keys in the
// order it needs them.
type request struct {
	ctx        context.Context // the caller's: once done, the work is dropped
	pass, salt []byte
	p          Params
	done       chan struct{}
	dk         []byte // nil when dropped
}

// dropped reports whether the caller has given up on the request.
func (r *request) dropped() bool { return r.ctx != nil && r.ctx.Err() != nil }

var kdfQueue kdfQueueState

type kdfQueueState struct {
	mu      sync.Mutex
	pending []*request
	runners int // started and not yet out of work
	free    int // free lanes of the runners
	// queued is len(pending), for runners to look at without the lock.
	queued atomic.Int32
}

// kdfRuns counts, for tests, the runners started, the derivations that
// joined a runner already deriving, and those stopped because their
// caller gave up.
var kdfRuns struct{ runners, joined, stopped atomic.Int64 }

// pairedKDF is kdf, run in a lane of a runner (see request). When ctx ends
// first it returns ctx's error: a request still queued is dropped, a
// running one stops within a few milliseconds.
func pairedKDF(ctx context.Context, pass, salt []byte, p Params) ([]byte, error) {
	if Lanes < 2 {
		if dk := kdfUntil(pass, salt, p.LogN, int(p.R), int(p.P), func() bool { return ctx.Err() != nil }); dk != nil {
			return dk, nil
		}
		return nil, context.Cause(ctx)
	}
	me := &request{ctx: ctx, pass: pass, salt: salt, p: p, done: make(chan struct{})}
	q := &kdfQueue
	q.mu.Lock()
	if len(q.pending) >= q.free && q.runners < runtime.GOMAXPROCS(0) {
		q.runners++
		kdfRuns.runners.Add(1)
		q.free += Lanes - 1
		go runKDFs(me)
	} else {
		q.pending = append(q.pending, me)
		q.queued.Store(int32(len(q.pending)))
	}
	q.mu.Unlock()
	select {
	case <-me.done:
	case <-ctx.Done():
		q.mu.Lock()
		if i := slices.Index(q.pending, me); i >= 0 {
			q.pending = slices.Delete(q.pending, i, i+1)
			q.queued.Store(int32(len(q.pending)))
			q.mu.Unlock()
			return nil, context.Cause(ctx)
		}
		q.mu.Unlock()
		<-me.done // a runner has it, and stops soon
	}
	if me.dk == nil {
		return nil, context.Cause(ctx)
	}
	return me.dk, nil
}

// runner runs derivations in its lanes (see request).
type runner struct {
	lanes [2]*derivation
	r     int      // the lanes' r
	busy  int      // the lanes the queue counts as busy
	zeros []uint32 // 32·r zero words (stepLanes)
}

// runKDFs runs first, and then the pending requests its lanes can take,
// until none is left.
func runKDFs(first *request) {
	w := &runner{r: int(first.p.R), busy: 1}
	w.start(0, first)
	look := false // whether a lane came free since the runner last looked
	for step := 1; ; step++ {
		free := w.lanes[0] == nil || w.lanes[1] == nil
		if look || free && step&63 == 0 && kdfQueue.queued.Load() > 0 {
			look = false
			if !w.fill() {
				return
			}
		}
		stepLanes(w.lanes[0], w.lanes[1], w.r, w.zeros)
		for k, d := range w.lanes {
			if d != nil && d.advance() {
				d.req.dk = d.finish()
				close(d.req.done)
				w.lanes[k], look = nil, true
			}
		}
		// A preemption point (see yieldEvery), and the lanes of callers
		// that gave up come free.
		if step&1023 == 0 {
			runtime.Gosched()
			for k, d := range w.lanes {
				if d != nil && d.req.dropped() {
					kdfRuns.stopped.Add(1)
					d.abandon()
					close(d.req.done)
					w.lanes[k], look = nil, true
				}
			}
		}
	}
}

// start runs req in lane k; w.r is req's r.
func (w *runner) start(k int, req *request) {
	w.lanes[k] = newDerivation(req)
	if len(w.zeros) < 32*w.r {
		w.zeros = make([]uint32, 32*w.r)
	}
}

// fill gives the runner's free lanes the oldest pending requests they can
// take (with a lane running, of its r), and tells the queue which lanes
// are free. It reports false when no lane runs and none was taken: the
// runner is then counted out and must end.
func (w *runner) fill() bool {
	q := &kdfQueue
	q.mu.Lock()
	running := 0
	for _, d := range w.lanes {
		if d != nil {
			running++
		}
	}
	alone := running == 0
	var took [2]*request
	for k := range w.lanes {
		if w.lanes[k] != nil {
			continue
		}
		i := slices.IndexFunc(q.pending, func(req *request) bool { return running == 0 || int(req.p.R) == w.r })
		if i < 0 {
			break
		}
		took[k] = q.pending[i]
		q.pending = slices.Delete(q.pending, i, i+1)
		if running == 0 {
			w.r = int(took[k].p.R)
		}
		running++
	}
	q.queued.Store(int32(len(q.pending)))
	q.free += w.busy - running
	w.busy = running
	if running == 0 {
		q.runners--
		q.free -= Lanes
		q.mu.Unlock()
		return false
	}
	q.mu.Unlock()
	for k, req := range took {
		if req == nil {
			continue
		}
		if !alone {
			kdfRuns.joined.Add(1)
		}
		w.start(k, req)
		alone = false
	}
	return true
}
