package scryptenc

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"runtime"
	"sync"
	"testing"
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

// Two derivations in one runner's lanes need not start together: a lane
// that joins at any step of the other (filling V, mixing, between two of
// its p blocks) or with other parameters of the same r, gives each its
// own key.
func TestLanesAtAnyOffset(t *testing.T) {
	if !haveBlockMix2 {
		t.Skip("this CPU has no AVX2: derivations run alone")
	}
	for _, c := range []struct {
		a, b   Params
		offset int // steps a runs before b joins
	}{
		{Params{LogN: 6, R: 8, P: 1}, Params{LogN: 6, R: 8, P: 1}, 0},
		{Params{LogN: 6, R: 8, P: 1}, Params{LogN: 6, R: 8, P: 1}, 17},  // a fills V, b starts
		{Params{LogN: 6, R: 8, P: 1}, Params{LogN: 6, R: 8, P: 1}, 64},  // a mixes, b fills V
		{Params{LogN: 6, R: 8, P: 1}, Params{LogN: 6, R: 8, P: 1}, 100}, // the same, later
		{Params{LogN: 5, R: 2, P: 3}, Params{LogN: 7, R: 2, P: 1}, 70},  // a on its second block
		{Params{LogN: 8, R: 1, P: 1}, Params{LogN: 3, R: 1, P: 4}, 300},
	} {
		reqA := &request{pass: []byte("pass a"), salt: randomBytes(32, 1), p: c.a}
		reqB := &request{pass: []byte("b"), salt: randomBytes(9, 2), p: c.b}
		zeros := make([]uint32, 32*c.a.R)
		a := newDerivation(reqA)
		var b *derivation
		var dkA, dkB []byte
		for step := 0; dkA == nil || dkB == nil; step++ {
			if step == c.offset {
				b = newDerivation(reqB)
			}
			stepLanes(a, b, int(c.a.R), zeros)
			if a != nil && a.advance() {
				dkA, a = a.finish(), nil
			}
			if b != nil && b.advance() {
				dkB, b = b.finish(), nil
			}
		}
		if want := portableKDF(reqA.pass, reqA.salt, c.a.LogN, int(c.a.R), int(c.a.P)); !bytes.Equal(dkA, want) {
			t.Errorf("%v joined by %v after %d steps: first key %x, want %x", c.a, c.b, c.offset, dkA, want)
		}
		if want := portableKDF(reqB.pass, reqB.salt, c.b.LogN, int(c.b.R), int(c.b.P)); !bytes.Equal(dkB, want) {
			t.Errorf("%v joined by %v after %d steps: second key %x, want %x", c.a, c.b, c.offset, dkB, want)
		}
	}
}

// A request joins a running runner's free lane rather than take another
// core: requests that come one after another while the first runs share
// its runner, and however many come at once there are never more runners
// than cores, each caller with its own key.
func TestKDFRequestsJoinLanes(t *testing.T) {
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: derivations run alone")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	waitRunners()
	p := Params{LogN: 14, R: 8, P: 1} // tens of milliseconds
	derive := func(i int) {
		pass, salt := randomBytes(8+i, uint64(i)), randomBytes(32, uint64(200+i))
		if got, want := mustKDF(pairedKDF(context.Background(), pass, salt, p)), portableKDF(pass, salt, p.LogN, 8, 1); !bytes.Equal(got, want) {
			t.Errorf("request %d: %x, want %x", i, got, want)
		}
	}

	runners, joined := kdfRuns.runners.Load(), kdfRuns.joined.Load()
	slow := Params{LogN: 17, R: 8, P: 1} // a few tenths of a second
	first := make(chan []byte)
	go func() { first <- mustKDF(pairedKDF(context.Background(), []byte("first"), []byte("salt"), slow)) }()
	for kdfRuns.runners.Load() == runners {
		runtime.Gosched()
	}
	derive(1)
	derive(2)
	if got := kdfRuns.joined.Load() - joined; got != 2 {
		t.Errorf("%d of two requests made while a derivation ran joined its runner, want 2", got)
	}
	if want := kdf([]byte("first"), []byte("salt"), slow.LogN, 8, 1); !bytes.Equal(<-first, want) {
		t.Error("the first derivation's key is wrong")
	}
	if got := kdfRuns.runners.Load() - runners; got != 1 {
		t.Errorf("%d runners for them, want 1", got)
	}

	waitRunners()
	runners = kdfRuns.runners.Load()
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() { derive(i) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	peak := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			runtime.Gosched()
		}
		kdfQueue.mu.Lock()
		peak = max(peak, kdfQueue.runners)
		kdfQueue.mu.Unlock()
	}
	if peak > 2 {
		t.Errorf("%d runners at once on two cores", peak)
	}
	if got := kdfRuns.runners.Load() - runners; got > 5 {
		t.Errorf("%d runners for nine requests that came at once, want at most 5 (each runs two)", got)
	}
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

// A caller that gives up gets its context's error, and its derivation
// stops rather than running on for nobody; a derivation sharing the
// runner goes on and gets its key.
func TestKDFCancel(t *testing.T) {
	if Lanes < 2 {
		t.Skip("this CPU has no AVX2: derivations run in the caller")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	waitRunners()
	p := DefaultParams // about a second here: far longer than cancelling takes
	stopped, runners, joined := kdfRuns.stopped.Load(), kdfRuns.runners.Load(), kdfRuns.joined.Load()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := pairedKDF(ctx, []byte("p"), []byte("salt"), p); errc <- err }()
	for kdfRuns.runners.Load() == runners { // cancel once it runs
		runtime.Gosched()
	}
	other := make(chan []byte, 1)
	go func() { other <- mustKDF(pairedKDF(context.Background(), []byte("b"), []byte("salt"), p)) }()
	for kdfRuns.joined.Load() == joined { // and once the other shares its runner
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled derivation: %v, want context.Canceled", err)
	}
	if want := kdf([]byte("b"), []byte("salt"), p.LogN, int(p.R), int(p.P)); !bytes.Equal(<-other, want) {
		t.Error("the other derivation's key is wrong")
	}
	waitRunners()
	if got := kdfRuns.stopped.Load() - stopped; got != 1 {
		t.Errorf("%d derivations stopped, want the cancelled one", got)
	}
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
