package progress

import (
	"sync"
	"time"
)

// AsyncReporter delivers events to a Reporter from a goroutine of its own;
// see Async.
type AsyncReporter struct {
	r    Reporter
	mu   sync.Mutex
	q    []Event
	wake chan struct{} // a token when q has events
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the goroutine has ended
	once sync.Once
}

// Async returns a Reporter whose Report never waits for r: it queues the
// event, and a goroutine delivers the queue to r in order. An Update
// replaces the Update queued last if that has the same stage and is not
// delivered yet, so a consumer that falls behind sees the latest state
// (and every stage), and the queue stays short; every other event is
// delivered. Close delivers what is queued and ends the goroutine; call it
// once the engine is done. A nil r is Discard.
func Async(r Reporter) *AsyncReporter {
	if r == nil {
		r = Discard
	}
	a := &AsyncReporter{r: r, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if r == Discard {
		close(a.done) // nothing to deliver to
		return a
	}
	go a.deliver()
	return a
}

// Report queues e; it never blocks on the consumer.
func (a *AsyncReporter) Report(e Event) {
	if a.r == Discard {
		return
	}
	a.mu.Lock()
	if n := len(a.q); e.Kind == Update && n > 0 && a.q[n-1].Kind == Update && a.q[n-1].Stage == e.Stage {
		a.q[n-1] = e
	} else {
		a.q = append(a.q, e)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *AsyncReporter) deliver() {
	defer close(a.done)
	for {
		select {
		case <-a.wake:
		case <-a.stop:
			a.flush()
			return
		}
		a.flush()
	}
}

// flush delivers the queue; the consumer is called without the lock held.
func (a *AsyncReporter) flush() {
	for {
		a.mu.Lock()
		q := a.q
		a.q = nil
		a.mu.Unlock()
		if len(q) == 0 {
			return
		}
		for _, e := range q {
			a.r.Report(e)
		}
	}
}

// Close delivers the events queued so far and stops delivering; events
// reported after Close are dropped. It waits for the consumer.
func (a *AsyncReporter) Close() {
	a.once.Do(func() {
		if a.r != Discard {
			close(a.stop)
		}
	})
	<-a.done
}

// Throttled passes events on to a Reporter, holding back updates that
// come too often; see Throttle.
type Throttled struct {
	r     Reporter
	every time.Duration
	now   func() time.Time // time.Now; tests change it

	mu      sync.Mutex
	started bool
	stage   Stage
	last    time.Time // when an update was last passed on
	held    *Event    // the latest update held back
	timer   *time.Timer
}

// Throttle returns a Reporter for a consumer that redraws, such as a GUI:
// it passes to r the first update, every stage change and then at most
// one update per every; the latest update it held back is passed once
// every has passed, so r always ends up with the latest state. It never
// holds back VMStarted, VMDone, VMFailed or Warning: before one of those
// it passes the update it holds, so r sees the events in their order.
// Report calls r under a lock, from the caller's goroutine or Throttle's
// timer; the engines put Async in front, so a slow r never holds them up.
// Close passes what is held and stops the timer.
func Throttle(r Reporter, every time.Duration) *Throttled {
	return &Throttled{r: r, every: every, now: time.Now}
}

// Report passes e on, or holds it back.
func (t *Throttled) Report(e Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Kind != Update {
		t.passHeld()
		t.r.Report(e)
		return
	}
	now := t.now()
	if !t.started || e.Stage != t.stage || e.Stage == Done || now.Sub(t.last) >= t.every {
		t.held = nil
		t.pass(e, now)
		return
	}
	t.held = &e
	if t.timer == nil {
		t.timer = time.AfterFunc(t.every-now.Sub(t.last), t.tick)
	}
}

// pass passes an update on.
func (t *Throttled) pass(e Event, now time.Time) {
	t.started, t.stage, t.last = true, e.Stage, now
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.r.Report(e)
}

// passHeld passes the update held back, if any.
func (t *Throttled) passHeld() {
	if t.held != nil {
		e := *t.held
		t.held = nil
		t.pass(e, t.now())
	}
}

func (t *Throttled) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = nil
	t.passHeld()
}

// Close passes the update held back, if any, and stops the timer.
func (t *Throttled) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.passHeld()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}
