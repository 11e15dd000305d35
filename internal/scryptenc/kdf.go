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
	n := 1 << logN
	b := pbkdf2.Key(password, salt, 1, p*128*r, sha256.New)
	v, free := allocScratch(32 * r * n)
	x := make([]uint32, 32*r)
	y := make([]uint32, 32*r)
	for i := 0; i < p; i++ {
		if !smix(b[i*128*r:(i+1)*128*r], r, n, v, x, y, stop) {
			free()
			clear(b)
			return nil
		}
	}
	free()
	dk := pbkdf2.Key(password, b, 1, 64, sha256.New)
	clear(b)
	return dk
}

// smix is scrypt's ROMix on one 128·r-byte lane of b. The 64-byte salsa
// blocks are kept in the SIMD-friendly order in which each 16-byte row is a
// diagonal of the 4x4 salsa matrix (word i holds original word 5i mod 16),
// converted once on the way in and once on the way out. It returns false
// when stop asked it to give up.
func smix(b []byte, r, n int, v, x, y []uint32, stop func() bool) bool {
	words := 32 * r
	for blk := 0; blk < 2*r; blk++ {
		for i := 0; i < 16; i++ {
			x[blk*16+i] = binary.LittleEndian.Uint32(b[(blk*16+i*5%16)*4:])
		}
	}
	// V[i+1] = BlockMix(V[i]) straight into the table, with no copies.
	copy(v, x)
	for i := 0; i < n-1; i++ {
		blockMix(&v[i*words], &v[(i+1)*words], r)
		if yieldEvery(i, stop) {
			return false
		}
	}
	blockMix(&v[(n-1)*words], &x[0], r)
	last := (2*r - 1) * 16
	for i := 0; i < n; i++ {
		// Integerify: the first eight bytes of the last block, which in
		// the diagonal order are words 0 and 13 of that block.
		j := (uint64(x[last]) | uint64(x[last+13])<<32) & uint64(n-1)
		blockMixXor(&x[0], &v[int(j)*words], &y[0], r)
		x, y = y, x
		if yieldEvery(i, stop) {
			return false
		}
	}
	for blk := 0; blk < 2*r; blk++ {
		for i := 0; i < 16; i++ {
			binary.LittleEndian.PutUint32(b[(blk*16+i*5%16)*4:], x[blk*16+i])
		}
	}
	return true
}

// kdf2 derives two keys with the same parameters at once (blockMix2): on a
// core that would otherwise wait on salsa20/8's dependency chain, the
// second derivation costs little. Without AVX2 it derives them in turn.
func kdf2(passA, saltA, passB, saltB []byte, logN uint8, r, p int) (dkA, dkB []byte) {
	return kdf2Until(passA, saltA, passB, saltB, logN, r, p, nil)
}

// kdf2Until is kdf2 that gives up, returning nils, once stop reports true.
func kdf2Until(passA, saltA, passB, saltB []byte, logN uint8, r, p int, stop func() bool) (dkA, dkB []byte) {
	if !haveBlockMix2 {
		if dkA = kdfUntil(passA, saltA, logN, r, p, stop); dkA == nil {
			return nil, nil
		}
		if dkB = kdfUntil(passB, saltB, logN, r, p, stop); dkB == nil {
			return nil, nil
		}
		return dkA, dkB
	}
	n := 1 << logN
	bA := pbkdf2.Key(passA, saltA, 1, p*128*r, sha256.New)
	bB := pbkdf2.Key(passB, saltB, 1, p*128*r, sha256.New)
	vA, freeA := allocScratch(32 * r * n)
	vB, freeB := allocScratch(32 * r * n)
	lanes := [2]lane{{v: vA}, {v: vB}}
	for i := range lanes {
		lanes[i].x = make([]uint32, 32*r)
		lanes[i].y = make([]uint32, 32*r)
	}
	for i := 0; i < p; i++ {
		lanes[0].b = bA[i*128*r : (i+1)*128*r]
		lanes[1].b = bB[i*128*r : (i+1)*128*r]
		if !smix2(&lanes, r, n, stop) {
			freeA()
			freeB()
			clear(bA)
			clear(bB)
			return nil, nil
		}
	}
	freeA()
	freeB()
	dkA = pbkdf2.Key(passA, bA, 1, 64, sha256.New)
	dkB = pbkdf2.Key(passB, bB, 1, 64, sha256.New)
	clear(bA)
	clear(bB)
	return dkA, dkB
}

// lane is one of the two derivations of smix2.
type lane struct {
	b       []byte // the 128·r-byte block being mixed
	v, x, y []uint32
}

// smix2 is smix on two lanes at once.
func smix2(l *[2]lane, r, n int, stop func() bool) bool {
	words := 32 * r
	for k := range l {
		toDiagonal(l[k].b, l[k].x, r)
		copy(l[k].v, l[k].x)
	}
	a, b := &l[0], &l[1]
	for i := 0; i < n-1; i++ {
		blockMix2(&a.v[i*words], &a.v[(i+1)*words], &b.v[i*words], &b.v[(i+1)*words], r)
		if yieldEvery(i, stop) {
			return false
		}
	}
	blockMix2(&a.v[(n-1)*words], &a.x[0], &b.v[(n-1)*words], &b.x[0], r)
	last := (2*r - 1) * 16
	xa, ya, xb, yb := a.x, a.y, b.x, b.y
	for i := 0; i < n; i++ {
		ja := (uint64(xa[last]) | uint64(xa[last+13])<<32) & uint64(n-1)
		jb := (uint64(xb[last]) | uint64(xb[last+13])<<32) & uint64(n-1)
		blockMixXor2(&xa[0], &a.v[int(ja)*words], &ya[0], &xb[0], &b.v[int(jb)*words], &yb[0], r)
		xa, ya, xb, yb = ya, xa, yb, xb
		if yieldEvery(i, stop) {
			return false
		}
	}
	fromDiagonal(xa, a.b, r)
	fromDiagonal(xb, b.b, r)
	return true
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
// (see smix); fromDiagonal stores it back.
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
