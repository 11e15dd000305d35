package scryptenc

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The SIMD derivation equals the reference implementation for many
// parameter sets, including r and p above 1 and odd salt lengths.
func TestKDFMatchesReference(t *testing.T) {
	for _, c := range []struct {
		logN uint8
		r, p int
	}{{1, 1, 1}, {4, 1, 1}, {10, 8, 1}, {8, 2, 3}, {6, 5, 2}, {12, 3, 1}, {9, 16, 1}, {3, 32, 1}} {
		pass := randomBytes(int(c.logN)*3, uint64(c.logN))
		salt := randomBytes(7+c.r, uint64(c.r))
		got := kdf(pass, salt, c.logN, c.r, c.p)
		want := portableKDF(pass, salt, c.logN, c.r, c.p)
		if !bytes.Equal(got, want) {
			t.Errorf("logN=%d r=%d p=%d: %x, want %x", c.logN, c.r, c.p, got, want)
		}
	}
}

// RFC 7914 §12, second vector (N=1024, r=8, p=16), first 64 bytes.
func TestKDFRFC7914(t *testing.T) {
	want, _ := hex.DecodeString("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
	if got := kdf([]byte("password"), []byte("NaCl"), 10, 8, 16); !bytes.Equal(got, want) {
		t.Fatalf("got %x", got)
	}
}

func BenchmarkKDFPortable(b *testing.B) {
	for b.Loop() {
		portableKDF([]byte("p"), []byte("salt"), DefaultParams.LogN, 8, 1)
	}
}

func BenchmarkKDF(b *testing.B) {
	for b.Loop() {
		kdf([]byte("p"), []byte("salt"), DefaultParams.LogN, 8, 1)
	}
}

// Two derivations at once equal two alone, for many parameter sets.
func TestKDF2MatchesReference(t *testing.T) {
	for _, c := range []struct {
		logN uint8
		r, p int
	}{{1, 1, 1}, {4, 1, 1}, {10, 8, 1}, {8, 2, 3}, {6, 5, 2}, {12, 3, 1}, {9, 16, 1}} {
		passA, saltA := randomBytes(int(c.logN)*3, 1), randomBytes(7+c.r, 2)
		passB, saltB := randomBytes(5, 3), randomBytes(32, 4)
		gotA, gotB := kdf2(passA, saltA, passB, saltB, c.logN, c.r, c.p)
		if want := portableKDF(passA, saltA, c.logN, c.r, c.p); !bytes.Equal(gotA, want) {
			t.Errorf("A logN=%d r=%d p=%d: %x, want %x", c.logN, c.r, c.p, gotA, want)
		}
		if want := portableKDF(passB, saltB, c.logN, c.r, c.p); !bytes.Equal(gotB, want) {
			t.Errorf("B logN=%d r=%d p=%d: %x, want %x", c.logN, c.r, c.p, gotB, want)
		}
	}
}

// Two keys: one kdf2 call against two kdf calls on one core.
func BenchmarkKDF2(b *testing.B) {
	for b.Loop() {
		kdf2([]byte("p"), []byte("salt"), []byte("q"), []byte("salt2"), DefaultParams.LogN, 8, 1)
	}
}

// Concurrent derivations pair up (or run alone) and every caller gets its
// own key, also when parameters differ.
func TestPairedKDF(t *testing.T) {
	params := []Params{{LogN: 10, R: 8, P: 1}, {LogN: 9, R: 4, P: 2}}
	type result struct{ got, want []byte }
	out := make(chan result, 16)
	for i := range 16 {
		go func() {
			p := params[i%3%2]
			pass, salt := randomBytes(8+i, uint64(i)), randomBytes(32, uint64(100+i))
			dk, _ := pairedKDF(context.Background(), pass, salt, p)
			out <- result{dk, portableKDF(pass, salt, p.LogN, int(p.R), int(p.P))}
		}()
	}
	for range 16 {
		r := <-out
		if !bytes.Equal(r.got, r.want) {
			t.Fatalf("%x, want %x", r.got, r.want)
		}
	}
}

// Requests that find a core free run on it at once, alone; those that find
// every core busy queue and run in pairs, at most one runner per core: on
// two cores, two requests start alone, and four that come while those run
// are two pairs, each caller with its own key.
func TestKDFRequestsPairUp(t *testing.T) {
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: derivations never pair")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	defer func(w func(Params) time.Duration) { pairWait = w }(pairWait)
	pairWait = func(Params) time.Duration { return 2 * time.Second } // far longer than the requests take to arrive
	alone, paired := kdfRuns.alone.Load(), kdfRuns.paired.Load()
	busy := occupyCores()
	if a := kdfRuns.alone.Load() - alone; a != 2 {
		t.Errorf("%d requests running alone on two free cores, want 2", a)
	}
	p := Params{LogN: 12, R: 8, P: 1}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			pass, salt := randomBytes(8+i, uint64(i)), randomBytes(32, uint64(200+i))
			if got, want := mustKDF(pairedKDF(context.Background(), pass, salt, p)), portableKDF(pass, salt, p.LogN, 8, 1); !bytes.Equal(got, want) {
				t.Errorf("request %d: %x, want %x", i, got, want)
			}
		})
	}
	wg.Wait()
	busy.Wait()
	if a, b := kdfRuns.alone.Load()-alone, kdfRuns.paired.Load()-paired; a != 2 || b != 2 {
		t.Errorf("%d alone and %d pairs, want 2 and 2", a, b)
	}
}

// occupyCores starts a derivation on every core (at parameters no test
// request shares, so that none pairs with them) and returns once they
// run; they take a few tenths of a second.
func occupyCores() *sync.WaitGroup {
	p := Params{LogN: 16, R: 8, P: 1}
	var wg sync.WaitGroup
	start := kdfRuns.alone.Load()
	cores := int64(runtime.GOMAXPROCS(0))
	for i := range cores {
		wg.Go(func() { mustKDF(pairedKDF(context.Background(), []byte{byte(i)}, []byte("busy"), p)) })
	}
	for kdfRuns.alone.Load()-start < cores {
		runtime.Gosched()
	}
	return &wg
}

func mustKDF(dk []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return dk
}

// waitRunners waits until no derivation runner is left.
func waitRunners() {
	for {
		kdfQueue.mu.Lock()
		n := kdfQueue.runners
		kdfQueue.mu.Unlock()
		if n == 0 {
			return
		}
		runtime.Gosched()
	}
}

// A caller that gives up gets its context's error, and the derivation
// stops rather than running on for nobody; a pair stops only when both
// callers gave up, so a partner still gets its key.
func TestKDFCancel(t *testing.T) {
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: derivations run in the caller")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	defer func(w func(Params) time.Duration) { pairWait = w }(pairWait)
	p := DefaultParams // about a second here: far longer than cancelling takes

	pairWait = func(Params) time.Duration { return 0 } // alone
	stopped, alone, paired := kdfRuns.stopped.Load(), kdfRuns.alone.Load(), kdfRuns.paired.Load()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := pairedKDF(ctx, []byte("p"), []byte("salt"), p); errc <- err }()
	for kdfRuns.alone.Load() == alone { // cancel once it runs
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled derivation: %v, want context.Canceled", err)
	}
	waitRunners()
	if got := kdfRuns.stopped.Load() - stopped; got != 1 {
		t.Errorf("%d derivations stopped, want the cancelled one", got)
	}

	pairWait = func(Params) time.Duration { return 2 * time.Second } // a pair
	busy := occupyCores()                                            // so that the two queue
	defer busy.Wait()
	var wg sync.WaitGroup
	ctxA, cancelA := context.WithCancel(context.Background())
	wg.Go(func() {
		// Its key was being made for the partner anyway: either answer.
		if _, err := pairedKDF(ctxA, []byte("a"), []byte("salt"), p); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled partner: %v", err)
		}
	})
	wg.Go(func() {
		defer cancelA()
		got := mustKDF(pairedKDF(context.Background(), []byte("b"), []byte("salt"), p))
		if want := kdf([]byte("b"), []byte("salt"), p.LogN, int(p.R), int(p.P)); !bytes.Equal(got, want) {
			t.Errorf("partner's key %x, want %x", got, want)
		}
	})
	for kdfRuns.paired.Load() == paired && !t.Failed() { // cancel A once the pair runs
		runtime.Gosched()
	}
	cancelA()
	wg.Wait()
}

// A running derivation lets garbage collections through: the runtime
// cannot preempt assembly, so without the loops' preemption points each
// collection waited, with the world stopped, for hundreds of milliseconds.
// Ten collections must finish well within one derivation.
func TestKDFLetsCollectionsRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // the collections run beside the derivation
	for _, paired := range []bool{false, true} {
		started, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			close(started)
			if paired {
				kdf2([]byte("p"), []byte("salt"), []byte("q"), []byte("salt2"), DefaultParams.LogN, 8, 1)
			} else {
				kdf([]byte("p"), []byte("salt"), DefaultParams.LogN, 8, 1)
			}
		}()
		<-started
		for range 10 {
			runtime.GC()
		}
		select {
		case <-done:
			t.Errorf("paired=%v: the derivation ended before ten collections did", paired)
		default:
		}
		<-done
	}
}

// A probe timed while the cores were busy makes Estimate far too high; a
// lone request then still waits no longer than maxPairWait for a partner,
// while cheap parameters keep their shorter wait.
func TestPairWaitIsCapped(t *testing.T) {
	Estimate(DefaultParams) // the probe has run, so the one set here stays
	defer func(d time.Duration) { estimateProbe = d }(estimateProbe)
	estimateProbe = 100 * time.Millisecond // seen under load; a few ms when idle
	if got := pairWait(DefaultParams); got != maxPairWait {
		t.Errorf("wait at %v with a slow probe: %v, want the cap %v", DefaultParams, got, maxPairWait)
	}
	probe := Params{LogN: 12, R: 8, P: 1}
	if got, want := pairWait(probe), estimateProbe/8; got != want {
		t.Errorf("wait at %v: %v, want an eighth of its estimate, %v", probe, got, want)
	}
}

// A queued request whose runner waits for a partner runs alone as soon as
// another core comes free, however long the wait would have been.
func TestKDFWaitEndsWhenACoreFrees(t *testing.T) {
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: derivations never pair")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	defer func(w func(Params) time.Duration) { pairWait = w }(pairWait)
	pairWait = func(Params) time.Duration { return time.Hour }
	busy := occupyCores()
	alone := kdfRuns.alone.Load()
	pass, salt := []byte("lone"), []byte("salt")
	p := Params{LogN: 12, R: 8, P: 1}
	if got, want := mustKDF(pairedKDF(context.Background(), pass, salt, p)), portableKDF(pass, salt, p.LogN, 8, 1); !bytes.Equal(got, want) {
		t.Errorf("key %x, want %x", got, want)
	}
	busy.Wait()
	if a := kdfRuns.alone.Load() - alone; a != 1 {
		t.Errorf("%d derivations alone since the cores were busy, want 1", a)
	}
}
