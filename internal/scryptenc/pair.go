package scryptenc

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Lanes is how many key derivations per core callers that derive many
// keys (one per chunk) run concurrently: 2 with AVX2 (blockMix2), else 1.
// With AVX-512 a core has four lanes (runnerLanes), but more derivations
// at once would also take more memory (a work area each); with four
// lanes, a process's derivations can then share one core and leave the
// other to compression, decryption and writing.
var Lanes = func() int {
	if haveBlockMix2 {
		return 2
	}
	return 1
}()

// The derivations callers ask for concurrently (pairedKDF) are run by at
// most one runner per core, each with runnerLanes lanes (four with
// AVX-512, else two): a step of each lane's derivation per SIMD BlockMix.
// Two or four derivations in one runner cost about what one alone does
// (salsa20/8 waits on its dependency chain; the other lanes fill the
// gaps), and a derivation that joins a runner's free
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
//
// A spare request (spare) takes only a lane left free beside a derivation
// some caller waits for, and so costs next to nothing: it never starts a
// runner, yields its lane to any request that comes, and waits, parked
// with its work area, while no other derivation runs. Once its caller
// waits for it, it becomes an ordinary request and continues where it
// stopped.
type request struct {
	ctx        context.Context // the caller's: once done, the work is dropped
	pass, salt []byte
	p          Params
	done       chan struct{}
	dk         []byte // nil when dropped

	// The fields below are the queue's, under kdfQueue.mu.
	spare bool        // run only beside another derivation (spare)
	d     *derivation // a spare's derivation, kept while no lane runs it
	w     *runner     // the runner of a spare that is running
}

// dropped reports whether the caller has given up on the request.
func (r *request) dropped() bool { return r.ctx != nil && r.ctx.Err() != nil }

var kdfQueue kdfQueueState

type kdfQueueState struct {
	mu      sync.Mutex
	pending []*request
	spares  []*request // spare requests no lane runs, oldest first
	runners int        // started and not yet out of work
	free    int        // lanes of the runners that no ordinary request holds
	// queued and sparesQueued are len(pending) and len(spares), for
	// runners to look at without the lock.
	queued, sparesQueued atomic.Int32
}

// submitLocked runs req: in a new runner when every free lane is spoken
// for and a core has none, else in the next lane that comes free.
func (q *kdfQueueState) submitLocked(req *request) {
	if len(q.pending) >= q.free && q.runners < runtime.GOMAXPROCS(0) {
		q.runners++
		kdfRuns.runners.Add(1)
		q.free += runnerLanes - 1
		go runKDFs(req)
		return
	}
	q.pending = append(q.pending, req)
	q.noteQueuedLocked()
}

func (q *kdfQueueState) noteQueuedLocked() {
	q.queued.Store(int32(len(q.pending)))
	q.sparesQueued.Store(int32(len(q.spares)))
}

// unqueueLocked takes req out of the lists of requests no lane runs and
// reports whether it was in one.
func (q *kdfQueueState) unqueueLocked(req *request) bool {
	for _, list := range []*[]*request{&q.pending, &q.spares} {
		if i := slices.Index(*list, req); i >= 0 {
			*list = slices.Delete(*list, i, i+1)
			q.noteQueuedLocked()
			return true
		}
	}
	return false
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
	q.submitLocked(me)
	q.mu.Unlock()
	return me.wait(ctx)
}

// wait waits for the request, or gives it up when ctx ends first.
func (me *request) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-me.done:
	case <-ctx.Done():
		me.drop()
	}
	if me.dk == nil {
		return nil, context.Cause(ctx)
	}
	return me.dk, nil
}

// drop gives the request up (its ctx has ended) and returns once no
// runner works on it.
func (me *request) drop() {
	q := &kdfQueue
	q.mu.Lock()
	if q.unqueueLocked(me) {
		if me.d != nil {
			me.d.abandon()
			me.d = nil
		}
		close(me.done)
	}
	q.mu.Unlock()
	<-me.done // a runner has it, and stops soon
}

// spare is a key derivation that runs only in lanes other derivations
// leave free (see request): keys a caller will need later, derived at no
// cost to the keys it needs now.
type spare struct {
	req    *request
	cancel context.CancelFunc
}

// newSpare queues a spare derivation of pass with salt. Without AVX2 a
// core has no second lane, and it returns nil.
func newSpare(pass, salt []byte, p Params) *spare {
	if Lanes < 2 || derivable(p) != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := &request{ctx: ctx, pass: pass, salt: salt, p: p, done: make(chan struct{}), spare: true}
	q := &kdfQueue
	q.mu.Lock()
	q.spares = append(q.spares, req)
	q.noteQueuedLocked()
	q.mu.Unlock()
	return &spare{req: req, cancel: cancel}
}

// Done is closed once the derivation has finished or was dropped.
func (s *spare) Done() <-chan struct{} { return s.req.done }

// Wait makes the derivation an ordinary one, continuing from where it
// is, and returns its result; when ctx ends first it drops it.
func (s *spare) Wait(ctx context.Context) ([]byte, error) {
	req := s.req
	q := &kdfQueue
	q.mu.Lock()
	select {
	case <-req.done:
	default:
		switch {
		case !req.spare:
		case req.w != nil:
			// Running: its lane counts as busy from now on (its
			// runner fills once more before it ends, and recounts).
			req.spare = false
			req.w.busy++
			q.free--
		case q.unqueueLocked(req): // queued, or parked: submitted anew
			req.spare = false
			q.submitLocked(req)
		}
	}
	q.mu.Unlock()
	select {
	case <-req.done:
	case <-ctx.Done():
		s.Drop()
		return nil, context.Cause(ctx)
	}
	if req.dk == nil {
		return nil, ErrSpareDropped
	}
	return req.dk, nil
}

// ErrSpareDropped: the key derived ahead was given up (SpareKey.Drop).
var ErrSpareDropped = errors.New("scryptenc: the spare derivation was dropped")

// Drop gives the derivation up and frees its work area, or the key.
func (s *spare) Drop() {
	s.cancel()
	s.req.drop()
	clear(s.req.dk)
}

// runner runs derivations in its lanes (see request).
type runner struct {
	lanes   []*derivation // runnerLanes of them
	r       int           // the lanes' r
	busy    int           // the lanes the queue counts as busy (ordinary requests')
	sparing bool          // whether a lane ran a spare request at the last fill
	mix     *mixer        // for the lanes' r
}

// runKDFs runs first, and then the pending requests its lanes can take,
// until none is left.
func runKDFs(first *request) {
	w := &runner{lanes: make([]*derivation, runnerLanes), r: int(first.p.R), busy: 1}
	q := &kdfQueue
	q.mu.Lock()
	parked := first.d
	first.d = nil
	q.mu.Unlock()
	w.start(0, first, parked)
	look := false // whether a lane came free since the runner last looked
	for step := 1; ; step++ {
		// Every 64 steps (about 0.1 ms at r=8) a lane not running an
		// ordinary request looks for one, and a free lane for a spare.
		if !look && step&63 == 0 {
			free := slices.Contains(w.lanes, nil)
			look = (free || w.sparing) && kdfQueue.queued.Load() > 0 || free && kdfQueue.sparesQueued.Load() > 0
		}
		if look {
			look = false
			if !w.fill() {
				return
			}
		}
		w.mix.step(w.lanes)
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

// start runs req in lane k, from where it stopped if it was parked; w.r
// is req's r.
func (w *runner) start(k int, req *request, parked *derivation) {
	if parked != nil {
		w.lanes[k] = parked
	} else {
		w.lanes[k] = newDerivation(req)
	}
	if w.mix == nil || w.mix.r != w.r {
		w.mix = newMixer(w.r)
	}
}

// fill gives the runner's free lanes the oldest pending requests they can
// take (with a lane running, of its r), then, beside an ordinary request,
// spare ones; it parks the spare requests it was running first, so that
// pending requests take their lanes. It tells the queue which lanes are
// free, and reports false when no lane runs an ordinary request: the
// runner is then counted out and must end.
func (w *runner) fill() bool {
	q := &kdfQueue
	q.mu.Lock()
	var parked []*request
	running := 0
	for k, d := range w.lanes {
		switch {
		case d == nil:
		case d.req.spare && d.req.dropped():
			kdfRuns.stopped.Add(1)
			d.abandon()
			close(d.req.done)
			w.lanes[k] = nil
		case d.req.spare:
			d.req.d, d.req.w = d, nil
			parked = append(parked, d.req)
			w.lanes[k] = nil
		default:
			running++
		}
	}
	q.spares = append(parked, q.spares...)
	alone := running == 0
	took := make([]*request, len(w.lanes))
	resume := make([]*derivation, len(w.lanes))
	take := func(list *[]*request, k int) bool {
		i := slices.IndexFunc(*list, func(req *request) bool { return running == 0 || int(req.p.R) == w.r })
		if i < 0 {
			return false
		}
		took[k], resume[k] = (*list)[i], (*list)[i].d
		took[k].d = nil
		*list = slices.Delete(*list, i, i+1)
		if running == 0 {
			w.r = int(took[k].p.R)
		}
		return true
	}
	for k := range w.lanes {
		if w.lanes[k] == nil && take(&q.pending, k) {
			running++
		}
	}
	w.sparing = false
	for k := range w.lanes {
		if w.lanes[k] == nil && took[k] == nil && running > 0 && take(&q.spares, k) {
			took[k].w, w.sparing = w, true
		}
	}
	q.noteQueuedLocked()
	q.free += w.busy - running
	w.busy = running
	if running == 0 {
		q.runners--
		q.free -= runnerLanes
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
		w.start(k, req, resume[k])
		alone = false
	}
	return true
}
