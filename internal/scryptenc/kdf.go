package scryptenc

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"

	"golang.org/x/crypto/pbkdf2"
)

// kdf is scrypt (RFC 7914) with an SIMD BlockMix where the CPU has one. The
// per-chunk key derivation is the format's main fixed cost, so it is worth
// the few hundred lines: x/crypto/scrypt's portable salsa20/8 is about 1.6x
// slower than the scrypt tool's SSE2 code.
func kdf(password, salt []byte, logN uint8, r, p int) []byte {
	return kdfUntil(password, salt, logN, r, p, nil)
}

// kdfUntil is kdf that gives up, returning nil, once stop (if not nil)
// reports true; it asks every couple of milliseconds.
func kdfUntil(password, salt []byte, logN uint8, r, p int, stop func() bool) []byte {
	if !haveBlockMix {
		return portableKDF(password, salt, logN, r, p)
	}
	d := newDerivation(&request{pass: password, salt: salt, p: Params{LogN: logN, R: uint32(r), P: uint32(p)}})
	m, lanes := newMixer(r), []*derivation{d}
	for i := 0; ; i++ {
		m.step(lanes)
		if d.advance() {
			return d.finish()
		}
		if yieldEvery(i, stop) {
			d.abandon()
			return nil
		}
	}
}

// derivation is one key derivation, scrypt's ROMix run step by step, so
// that a runner (pairedKDF) can mix two that started at different times in
// one SIMD BlockMix per step (blockMix2): the lanes are independent, only
// the instruction stream is shared. Each step is one BlockMix: steps 0 to
// n-2 fill V in place (V[i+1] = BlockMix(V[i]), with no copies), step n-1
// makes X, steps n to 2n-1 mix X with V. The 64-byte salsa blocks are kept
// in the SIMD-friendly order in which each 16-byte row is a diagonal of
// the 4x4 salsa matrix (word i holds original word 5i mod 16), converted
// once on the way in and once on the way out.
type derivation struct {
	req  *request
	r, n int
	b    []byte // PBKDF2's output: p blocks of 128·r bytes, mixed in turn
	part int    // the block of b being mixed
	i    int    // the next step
	v    []uint32
	free func()
	x, y []uint32
}

// newDerivation starts the derivation req asks for: PBKDF2, and a work
// area.
func newDerivation(req *request) *derivation {
	r, n := int(req.p.R), 1<<req.p.LogN
	d := &derivation{req: req, r: r, n: n, b: pbkdf2.Key(req.pass, req.salt, 1, int(req.p.P)*128*r, sha256.New),
		x: make([]uint32, 32*r), y: make([]uint32, 32*r)}
	d.v, d.free = allocScratch(32 * r * n)
	toDiagonal(d.block(), d.v, r) // V[0]
	return d
}

// block is the part of b being mixed.
func (d *derivation) block() []byte { return d.b[d.part*128*d.r : (d.part+1)*128*d.r] }

// operands are those of the next step: out = BlockMix(in XOR xor), with
// xor nil for none.
func (d *derivation) operands() (in, xor, out *uint32) {
	words := 32 * d.r
	switch {
	case d.i < d.n-1:
		return &d.v[d.i*words], nil, &d.v[(d.i+1)*words]
	case d.i == d.n-1:
		return &d.v[d.i*words], nil, &d.x[0]
	}
	// Integerify: the first eight bytes of X's last block, which in the
	// diagonal order are words 0 and 13 of that block.
	last := (2*d.r - 1) * 16
	j := (uint64(d.x[last]) | uint64(d.x[last+13])<<32) & uint64(d.n-1)
	return &d.x[0], &d.v[int(j)*words], &d.y[0]
}

// advance moves past the step just run, to the next block of b after the
// last step of one; it reports whether the derivation's mixing is done.
func (d *derivation) advance() bool {
	if d.i >= d.n {
		d.x, d.y = d.y, d.x
	}
	if d.i++; d.i < 2*d.n {
		return false
	}
	fromDiagonal(d.x, d.block(), d.r)
	if d.part++; d.part*128*d.r < len(d.b) {
		d.i = 0
		toDiagonal(d.block(), d.v, d.r)
		return false
	}
	return true
}

// finish returns the key, once advance said done.
func (d *derivation) finish() []byte {
	d.free()
	dk := pbkdf2.Key(d.req.pass, d.b, 1, 64, sha256.New)
	clear(d.b)
	return dk
}

// abandon drops the derivation's state.
func (d *derivation) abandon() {
	d.free()
	clear(d.b)
}

// stepLanes runs the next step of a and of b (either may be nil; r is
// theirs): both in one two-lane BlockMix when both run. zeros holds 32·r
// zero words, what a lane that XORs nothing XORs in when the other lane
// does.
func stepLanes(a, b *derivation, r int, zeros []uint32) {
	if a == nil {
		a, b = b, nil
	}
	inA, xorA, outA := a.operands()
	if b == nil {
		if xorA == nil {
			blockMix(inA, outA, r)
		} else {
			blockMixXor(inA, xorA, outA, r)
		}
		return
	}
	inB, xorB, outB := b.operands()
	if xorA == nil && xorB == nil {
		blockMix2(inA, outA, inB, outB, r)
		return
	}
	if xorA == nil {
		xorA = &zeros[0]
	}
	if xorB == nil {
		xorB = &zeros[0]
	}
	blockMixXor2(inA, xorA, outA, inB, xorB, outB, r)
}

// runnerLanes is how many derivations a runner (pairedKDF) mixes at once:
// four with AVX-512 (blockMix4), else Lanes.
var runnerLanes = func() int {
	if haveBlockMix4 && haveBlockMix2 {
		return 4
	}
	return Lanes
}()

// mixer runs the next steps of up to runnerLanes derivations of one r in
// one SIMD BlockMix. With AVX-512 that is the four-lane one, whatever the
// number of derivations: its one-instruction rotates make it faster than
// the others even for one (0.62 s against 0.85 s for a derivation at
// logN 18 here), and the other lanes cost nothing.
type mixer struct {
	r           int
	zeros, sink []uint32 // 32·r words: zeros to XOR in, what idle lanes write
}

func newMixer(r int) *mixer {
	return &mixer{r: r, zeros: make([]uint32, 32*r), sink: make([]uint32, 32*r)}
}

// step runs the next step of each derivation of ds (nil ones skipped).
func (m *mixer) step(ds []*derivation) {
	var active [4]*derivation
	n := 0
	for _, d := range ds {
		if d != nil {
			active[n] = d
			n++
		}
	}
	if haveBlockMix4 {
		m.stepFour(active[:n])
		return
	}
	stepLanes(active[0], active[1], m.r, m.zeros)
}

// stepFour runs the next step of up to four derivations in one four-lane
// BlockMix: a lane that XORs nothing XORs zeros, and an idle lane mixes
// zeros into sink.
func (m *mixer) stepFour(ds []*derivation) {
	var p [12]*uint32
	for k := range 4 {
		if k >= len(ds) {
			p[k], p[4+k], p[8+k] = &m.zeros[0], &m.zeros[0], &m.sink[0]
			continue
		}
		in, xor, out := ds[k].operands()
		if xor == nil {
			xor = &m.zeros[0]
		}
		p[k], p[4+k], p[8+k] = in, xor, out
	}
	blockMix4(&p, m.r)
}

// kdf2 derives two keys with the same parameters at once, in the two
// lanes of one core (stepLanes): the second costs little. Without AVX2 it
// derives them in turn.
func kdf2(passA, saltA, passB, saltB []byte, logN uint8, r, p int) (dkA, dkB []byte) {
	if !haveBlockMix2 {
		return kdf(passA, saltA, logN, r, p), kdf(passB, saltB, logN, r, p)
	}
	params := Params{LogN: logN, R: uint32(r), P: uint32(p)}
	a := newDerivation(&request{pass: passA, salt: saltA, p: params})
	b := newDerivation(&request{pass: passB, salt: saltB, p: params})
	m, lanes := newMixer(r), []*derivation{a, b}
	for i := 0; ; i++ {
		m.step(lanes)
		b.advance()
		if a.advance() {
			return a.finish(), b.finish()
		}
		yieldEvery(i, nil)
	}
}

// yieldEvery offers the scheduler a preemption point every 1024 BlockMix
// calls (about 2 ms at r=8). The runtime cannot preempt a goroutine inside
// assembly, and the loops around the SIMD BlockMix spend almost all their
// time there: without this, every garbage collection waited up to hundreds
// of milliseconds with the world stopped for a running derivation, while
// its mark worker burned the other core trying to interrupt it. It also
// asks stop (if set) whether to give up, and reports what it said.
func yieldEvery(i int, stop func() bool) bool {
	if i&1023 != 1023 {
		return false
	}
	runtime.Gosched()
	return stop != nil && stop()
}

// toDiagonal loads a 128·r-byte block into words in the diagonal order
// (see derivation); fromDiagonal stores it back.
func toDiagonal(b []byte, x []uint32, r int) {
	for blk := 0; blk < 2*r; blk++ {
		for i := 0; i < 16; i++ {
			x[blk*16+i] = binary.LittleEndian.Uint32(b[(blk*16+i*5%16)*4:])
		}
	}
}

func fromDiagonal(x []uint32, b []byte, r int) {
	for blk := 0; blk < 2*r; blk++ {
		for i := 0; i < 16; i++ {
			binary.LittleEndian.PutUint32(b[(blk*16+i*5%16)*4:], x[blk*16+i])
		}
	}
}
