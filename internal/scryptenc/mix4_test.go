package scryptenc

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// blockMix4 gives, in each lane, what blockMixXor gives alone, with lanes
// that XOR zeros and lanes that share nothing.
func TestBlockMix4(t *testing.T) {
	if !haveBlockMix4 {
		t.Skip("this CPU has no AVX-512")
	}
	for _, r := range []int{1, 2, 8} {
		words := 32 * r
		var p [12]*uint32
		var want [4][]uint32
		var outs [4][]uint32
		for k := range 4 {
			in := randomWords(words, uint64(10*r+k))
			xor := make([]uint32, words)
			if k%2 == 0 {
				xor = randomWords(words, uint64(100*r+k))
			}
			want[k] = make([]uint32, words)
			blockMixXor(&in[0], &xor[0], &want[k][0], r)
			outs[k] = make([]uint32, words)
			p[k], p[4+k], p[8+k] = &in[0], &xor[0], &outs[k][0]
		}
		blockMix4(&p, r)
		for k := range 4 {
			if !slices.Equal(outs[k], want[k]) {
				t.Errorf("r=%d lane %d differs", r, k)
			}
		}
	}
}

func randomWords(n int, seed uint64) []uint32 {
	b := randomBytes(4*n, seed)
	w := make([]uint32, n)
	for i := range w {
		w[i] = uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24
	}
	return w
}

func BenchmarkBlockMixLanes(b *testing.B) {
	r := 8
	words := 32 * r
	buf := func(seed uint64) []uint32 { return randomWords(words, seed) }
	in, x, out := [4][]uint32{}, [4][]uint32{}, [4][]uint32{}
	for k := range 4 {
		in[k], x[k], out[k] = buf(uint64(k)), buf(uint64(10+k)), make([]uint32, words)
	}
	b.Run("1", func(b *testing.B) {
		for b.Loop() {
			blockMixXor(&in[0][0], &x[0][0], &out[0][0], r)
		}
	})
	b.Run("2", func(b *testing.B) {
		for b.Loop() {
			blockMixXor2(&in[0][0], &x[0][0], &out[0][0], &in[1][0], &x[1][0], &out[1][0], r)
		}
	})
	b.Run("4", func(b *testing.B) {
		p := [12]*uint32{&in[0][0], &in[1][0], &in[2][0], &in[3][0], &x[0][0], &x[1][0], &x[2][0], &x[3][0], &out[0][0], &out[1][0], &out[2][0], &out[3][0]}
		for b.Loop() {
			blockMix4(&p, r)
		}
	})
}

// With AVX-512 a runner mixes four derivations: three requests made while
// a slow one runs join its runner, mixed in one four-lane BlockMix, and
// each gets its own key, however the lanes' phases differ.
func TestFourLanesShareARunner(t *testing.T) {
	if runnerLanes < 4 {
		t.Skip("this CPU has no AVX-512: runners have two lanes")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	waitRunners()
	runners, joined := kdfRuns.runners.Load(), kdfRuns.joined.Load()
	slow := Params{LogN: 16, R: 8, P: 1}
	first := make(chan []byte)
	go func() { first <- mustKDF(pairedKDF(context.Background(), []byte("first"), []byte("salt"), slow)) }()
	for kdfRuns.runners.Load() == runners {
		runtime.Gosched()
	}
	var wg sync.WaitGroup
	for i := range 3 {
		p := Params{LogN: uint8(11 + i), R: 8, P: uint32(1 + i%2)}
		wg.Go(func() {
			pass, salt := randomBytes(9+i, uint64(i)), randomBytes(32, uint64(400+i))
			if got, want := mustKDF(pairedKDF(context.Background(), pass, salt, p)), portableKDF(pass, salt, p.LogN, int(p.R), int(p.P)); !bytes.Equal(got, want) {
				t.Errorf("request %d: %x, want %x", i, got, want)
			}
		})
	}
	wg.Wait()
	if !bytes.Equal(<-first, portableKDF([]byte("first"), []byte("salt"), slow.LogN, 8, 1)) {
		t.Error("the first derivation's key is wrong")
	}
	if got := kdfRuns.joined.Load() - joined; got != 3 {
		t.Errorf("%d of three requests joined the running runner, want 3", got)
	}
	if got := kdfRuns.runners.Load() - runners; got != 1 {
		t.Errorf("%d runners, want 1", got)
	}
}

// One derivation, and four at once, through the runners.
func BenchmarkRunnerKDF(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(string(rune('0'+n)), func(b *testing.B) {
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						mustKDF(pairedKDF(context.Background(), []byte{byte(i)}, []byte("salt"), DefaultParams))
					})
				}
				wg.Wait()
			}
		})
	}
}
