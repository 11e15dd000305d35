package scryptenc

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func spareFor(t *testing.T, pass, salt []byte, p Params) *spare {
	t.Helper()
	s := newSpare(pass, salt, p)
	if s == nil {
		t.Fatal("no spare derivation with AVX2")
	}
	return s
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// needSpareLanes skips a test on a CPU without spare lanes, and runs it on
// two cores with no derivation running before it.
func needSpareLanes(t *testing.T) {
	t.Helper()
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: no spare lanes")
	}
	prev := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	waitRunners()
}

// sparesLeft is how many spare derivations the queue holds, parked or not
// yet started.
func sparesLeft() int {
	kdfQueue.mu.Lock()
	defer kdfQueue.mu.Unlock()
	return len(kdfQueue.spares)
}

// A spare derivation does not run alone; beside an ordinary one it runs
// in the free lane, without a runner of its own, and gets the right key.
func TestSpareRunsOnlyBesideAnother(t *testing.T) {
	needSpareLanes(t)
	small := Params{LogN: 12, R: 8, P: 1} // milliseconds
	s := spareFor(t, []byte("spare"), []byte("salt"), small)
	time.Sleep(100 * time.Millisecond) // dozens of times what it takes
	if isDone(s.Done()) {
		t.Fatal("a spare derivation ran with nothing else running")
	}
	runners := kdfRuns.runners.Load()
	slow := Params{LogN: 17, R: 8, P: 1} // a few tenths of a second
	first := make(chan []byte)
	go func() { first <- mustKDF(pairedKDF(context.Background(), []byte("first"), []byte("salt"), slow)) }()
	select {
	case <-s.Done():
	case <-first:
		t.Fatal("the spare derivation did not finish beside a longer one")
	}
	if got := <-first; !bytes.Equal(got, kdf([]byte("first"), []byte("salt"), slow.LogN, 8, 1)) {
		t.Error("the ordinary derivation's key is wrong")
	}
	if got := kdfRuns.runners.Load() - runners; got != 1 {
		t.Errorf("%d runners, want the ordinary derivation's only", got)
	}
	if got, err := s.Wait(context.Background()); err != nil || !bytes.Equal(got, portableKDF([]byte("spare"), []byte("salt"), small.LogN, 8, 1)) {
		t.Errorf("spare key %x, %v: wrong", got, err)
	}
}

// A spare derivation left part-way when the ordinary one beside it ends
// waits parked, and continues to the right key once its caller waits for
// it; one never started runs as an ordinary derivation then.
func TestSpareParksAndResumes(t *testing.T) {
	needSpareLanes(t)
	long := Params{LogN: 16, R: 8, P: 2} // two passes of ROMix
	s := spareFor(t, []byte("long"), []byte("salt"), long)
	later := spareFor(t, []byte("later"), []byte("salt2"), long)
	short := Params{LogN: 12, R: 8, P: 1}
	mustKDF(pairedKDF(context.Background(), []byte("short"), []byte("salt"), short))
	waitRunners()
	kdfQueue.mu.Lock()
	parked := s.req.d
	kdfQueue.mu.Unlock()
	if parked == nil || parked.i == 0 && parked.part == 0 || isDone(s.Done()) {
		t.Fatal("the spare derivation did not run part-way beside the short one and park")
	}
	if got, err := s.Wait(context.Background()); err != nil || !bytes.Equal(got, portableKDF([]byte("long"), []byte("salt"), long.LogN, 8, 2)) {
		t.Errorf("resumed spare key %x, %v: wrong", got, err)
	}
	if got, err := later.Wait(context.Background()); err != nil || !bytes.Equal(got, portableKDF([]byte("later"), []byte("salt2"), long.LogN, 8, 2)) {
		t.Errorf("spare key %x, %v: wrong", got, err)
	}
	waitRunners()
	if n := sparesLeft(); n != 0 {
		t.Errorf("%d spare derivations left queued", n)
	}
}

// Dropped spare derivations, queued or running, leave the queue (a running
// one stops at once), and waiting for one gives an error, not a key.
func TestSpareDrop(t *testing.T) {
	needSpareLanes(t)
	long := Params{LogN: 18, R: 8, P: 1}
	queued := spareFor(t, []byte("q"), []byte("salt"), long)
	queued.Drop()
	if _, err := queued.Wait(context.Background()); err == nil {
		t.Error("a dropped spare derivation gave a key")
	}
	running := spareFor(t, []byte("r"), []byte("salt"), long)
	done := make(chan struct{})
	go func() {
		defer close(done)
		mustKDF(pairedKDF(context.Background(), []byte("o"), []byte("salt"), long))
	}()
	for {
		kdfQueue.mu.Lock()
		w := running.req.w
		kdfQueue.mu.Unlock()
		if w != nil {
			break
		}
		runtime.Gosched()
	}
	stopped := kdfRuns.stopped.Load()
	running.Drop()
	if isDone(done) || kdfRuns.stopped.Load() != stopped+1 {
		t.Error("the running spare derivation was not stopped while the other ran on")
	}
	<-done
	waitRunners()
	if n := sparesLeft(); n != 0 {
		t.Errorf("%d spare derivations left queued", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := spareFor(t, []byte("c"), []byte("salt"), long).Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting with a cancelled context: %v", err)
	}
	if n := sparesLeft(); n != 0 {
		t.Errorf("%d spare derivations left queued", n)
	}
}

// Spare and ordinary derivations of mixed parameters, coming and being
// waited for in any order, each give their own key.
func TestSparesMixedWithOrdinary(t *testing.T) {
	needSpareLanes(t)
	params := []Params{{LogN: 13, R: 8, P: 1}, {LogN: 12, R: 4, P: 2}, {LogN: 14, R: 8, P: 1}}
	var wg sync.WaitGroup
	for i := range 24 {
		p := params[i%len(params)]
		pass, salt := randomBytes(5+i, uint64(i)), randomBytes(32, uint64(300+i))
		want := portableKDF(pass, salt, p.LogN, int(p.R), int(p.P))
		if i%2 == 0 {
			s := spareFor(t, pass, salt, p)
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 5 * time.Millisecond)
				if got, err := s.Wait(context.Background()); err != nil || !bytes.Equal(got, want) {
					t.Errorf("spare %d: %x, %v", i, got, err)
				}
			})
			continue
		}
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 3 * time.Millisecond)
			if got := mustKDF(pairedKDF(context.Background(), pass, salt, p)); !bytes.Equal(got, want) {
				t.Errorf("ordinary %d: %x", i, got)
			}
		})
	}
	wg.Wait()
	waitRunners()
	kdfQueue.mu.Lock()
	defer kdfQueue.mu.Unlock()
	if len(kdfQueue.spares) != 0 || len(kdfQueue.pending) != 0 || kdfQueue.free != 0 {
		t.Errorf("queue left with %d spares, %d pending, %d free lanes", len(kdfQueue.spares), len(kdfQueue.pending), kdfQueue.free)
	}
}
