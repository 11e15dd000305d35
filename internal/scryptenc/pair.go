package scryptenc

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Lanes is how many key derivations one core runs at once: 2 with AVX2
// (kdf2), else 1. Callers that derive many keys (one per chunk) run
// Lanes × cores derivations concurrently, so that each core gets a pair.
var Lanes = func() int {
	if haveBlockMix2 {
		return 2
	}
	return 1
}()

// The derivations callers ask for concurrently (pairedKDF) are run by at
// most one runner per core. A request that finds a core free runs on it at
// once, alone: the other cores may be idle, and two keys on two cores come
// sooner than a pair on one (which must also fault in two work areas
// before it starts). Requests that find every core busy queue, and a
// runner that comes free takes the oldest with a partner of the same
// parameters when there is one: two keys from one kdf2 pass cost about
// what one alone does, so once the cores are the limit pairing is worth a
// short wait. More runners than cores would only time-slice, finish the
// key needed next later, and fault in more fresh work areas (each 128·r·N
// bytes); queued requests reuse the areas of those before them.
//
// Requests run oldest first: a reader asks for chunk keys in the order it
// needs them.
type request struct {
	ctx        context.Context // the caller's: once done, the work is dropped
	pass, salt []byte
	p          Params
	done       chan struct{}
	dk         []byte // nil when dropped
}

// dropped reports whether the caller has given up on the request.
func (r *request) dropped() bool { return r.ctx.Err() != nil }

var kdfQueue kdfQueueState

type kdfQueueState struct {
	mu      sync.Mutex
	pending []*request
	runners int // started and not yet out of work
	waiting int // runners holding one request while waiting for a partner
	// arrived is closed (and replaced) when a request comes or a runner
	// ends, to wake runners waiting for a partner.
	arrived chan struct{}
}

// wake wakes the runners waiting for a partner. kdfQueue.mu is held.
func (q *kdfQueueState) wake() {
	if q.arrived != nil {
		close(q.arrived)
		q.arrived = nil
	}
}

// pairWait is how long a runner holding one request waits for a partner
// with the same parameters before it runs the request alone: an eighth of
// a derivation, less than the pair saves. Chunk requests of a streamed
// archive come one chunk read apart (tens of milliseconds).
//
// The wait is capped: Estimate times its probe once, and a probe that ran
// while both cores were busy (faulting in the first work areas, hashing)
// was seen to come out twenty times too slow, so that a lone key waited
// almost a second for a partner that was never coming.
var pairWait = func(p Params) time.Duration { return min(Estimate(p)/8, maxPairWait) }

const maxPairWait = 50 * time.Millisecond

// kdfRuns counts the derivations runKDFs ran alone and in pairs, for tests.
var kdfRuns struct{ alone, paired, stopped atomic.Int64 }

// pairedKDF is kdf, run together with a concurrent request of the same
// parameters when there is one (the chunk keys of a backup all share
// their parameters). When ctx ends first it returns ctx's error: a
// request still queued is dropped, a running one stops within a few
// milliseconds (a pair only when both callers have given up).
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
	// A waiting runner takes this request as its partner; else it runs on
	// a free core; else it queues.
	if q.waiting == 0 && q.runners < runtime.GOMAXPROCS(0) {
		q.runners++
		go runKDFs(me)
	} else {
		q.pending = append(q.pending, me)
		q.wake()
	}
	q.mu.Unlock()
	select {
	case <-me.done:
	case <-ctx.Done():
		q.mu.Lock()
		if i := slices.Index(q.pending, me); i >= 0 {
			q.pending = slices.Delete(q.pending, i, i+1)
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

// runKDFs runs first alone, then pending requests, a pair at a time where
// it can, until none is left.
func runKDFs(first *request) {
	q := &kdfQueue
	a := first
	for {
		var b *request
		if a == nil {
			q.mu.Lock()
			if len(q.pending) == 0 {
				break
			}
			a = q.pending[0]
			q.pending = q.pending[1:]
			if b = takePartner(a.p); b == nil && q.runners >= runtime.GOMAXPROCS(0) {
				b = waitForPartner(a.p)
			}
			q.mu.Unlock()
		}
		if b == nil {
			kdfRuns.alone.Add(1)
			a.dk = kdfUntil(a.pass, a.salt, a.p.LogN, int(a.p.R), int(a.p.P), a.dropped)
		} else {
			kdfRuns.paired.Add(1)
			bothDropped := func() bool { return a.dropped() && b.dropped() }
			a.dk, b.dk = kdf2Until(a.pass, a.salt, b.pass, b.salt, a.p.LogN, int(a.p.R), int(a.p.P), bothDropped)
			close(b.done)
		}
		if a.dk == nil {
			kdfRuns.stopped.Add(1)
		}
		close(a.done)
		a = nil
	}
	q.runners--
	q.wake() // a runner waiting for a partner now has a free core instead
	q.mu.Unlock()
}

// takePartner removes and returns the oldest pending request with
// parameters p, or nil. kdfQueue.mu is held.
func takePartner(p Params) *request {
	q := &kdfQueue
	for i, r := range q.pending {
		if r.p == p {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return r
		}
	}
	return nil
}

// waitForPartner waits up to pairWait(p) for a request with parameters p
// and takes it, or returns nil: also as soon as a core comes free, since
// the request then runs sooner alone. kdfQueue.mu is held on entry and on
// return.
func waitForPartner(p Params) *request {
	q := &kdfQueue
	q.waiting++
	defer func() { q.waiting-- }()
	deadline := time.Now().Add(pairWait(p))
	for {
		if q.arrived == nil {
			q.arrived = make(chan struct{})
		}
		arrived := q.arrived
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		q.mu.Unlock()
		timer := time.NewTimer(left)
		select {
		case <-arrived:
		case <-timer.C:
		}
		timer.Stop()
		q.mu.Lock()
		if b := takePartner(p); b != nil {
			return b
		}
		if q.runners < runtime.GOMAXPROCS(0) {
			return nil
		}
	}
}
