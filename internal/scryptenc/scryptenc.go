// Package scryptenc reads and writes the Tarsnap scrypt encrypted file format
// (version 0), the per-chunk encryption of backup format 4.
package scryptenc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"time"
)

const (
	// HeaderSize is the length of the file header: magic, version, params,
	// salt, checksum and header HMAC.
	HeaderSize = 96
	// TrailerSize is the HMAC-SHA256 over header and ciphertext.
	TrailerSize = 32
	// Overhead is what encryption adds to the plaintext length.
	Overhead = HeaderSize + TrailerSize
)

var magic = []byte("scrypt\x00")

// maxScratch bounds any one buffer of a derivation: far above every limit a
// caller sets, below the Go runtime's largest allocation (2^48 bytes on
// 64-bit) and what an int counts on 32-bit hosts.
const maxScratch = min(1<<46, math.MaxInt/4)

var (
	// ErrNotScrypt: the bytes are not an scrypt-encrypted file at all.
	ErrNotScrypt = errors.New("not scrypt-encrypted data")
	// ErrUnsupportedVersion: the magic matched but the format version is not 0.
	ErrUnsupportedVersion = errors.New("unsupported scrypt file format version")
	// ErrBadPassphrase: the header HMAC does not match the derived key. In a
	// backup this also means the data belongs to another name or backup.
	ErrBadPassphrase = errors.New("passphrase is incorrect")
	// ErrCorrupt: the header is damaged or the data fails its HMAC.
	ErrCorrupt = errors.New("scrypt data is corrupt")
	// ErrTooExpensive: the header asks for more memory or work than the
	// limits allow; the caller may retry with Limits.Force.
	ErrTooExpensive = errors.New("scrypt parameters exceed the limits")
)

// Params are the scrypt cost parameters: N = 2^LogN, block size R, parallelism P.
type Params struct {
	LogN uint8
	R, P uint32
}

// DefaultParams is what our writer uses unless told otherwise: 256 MiB and
// about 0.7 s of one core per key, a little below what `scrypt enc` picks on
// a large host (logN 21) so that chunk KDFs can run on every core at once.
var DefaultParams = Params{LogN: 18, R: 8, P: 1}

func (p Params) String() string { return fmt.Sprintf("logN=%d r=%d p=%d", p.LogN, p.R, p.P) }

// Memory is the bytes the key derivation needs, 128·r·N, or math.MaxUint64
// when that does not fit in 64 bits: a header can ask for up to 2^102
// bytes, and a product that wrapped would pass any limit.
func (p Params) Memory() uint64 { return mulPow2(128*uint64(p.R), p.LogN) }

// Work is N·r·p, proportional to the CPU time of the key derivation, or
// math.MaxUint64 when that does not fit in 64 bits.
func (p Params) Work() uint64 { return mulPow2(uint64(p.R)*uint64(p.P), p.LogN) }

// mulPow2 is x·2^k, saturated at math.MaxUint64 instead of wrapping. (x is
// at most 2^39 for memory and below 2^64 for work: r and p are 32-bit.)
func mulPow2(x uint64, k uint8) uint64 {
	if x == 0 {
		return 0
	}
	if int(k) > bits.LeadingZeros64(x) {
		return math.MaxUint64
	}
	return x << k
}

// exceeds reports whether x·2^k > limit, exactly, for any x and k.
func exceeds(x uint64, k uint8, limit uint64) bool {
	if x != 0 && int(k) > bits.LeadingZeros64(x) {
		return true // above 2^64 - 1, so above any limit
	}
	return x<<k > limit
}

// amount is x·2^k for messages: exact as a float64 when x has at most 53
// significant bits, which holds for every header the sanity check admits.
func amount(x uint64, k uint8) float64 { return math.Ldexp(float64(x), int(k)) }

// sane applies the rules of the reference decoder (1 ≤ logN ≤ 63, r·p < 2^30,
// r, p ≠ 0), which any header must pass before we look further.
func (p Params) sane() error {
	if p.LogN < 1 || p.LogN > 63 || p.R == 0 || p.P == 0 || uint64(p.R)*uint64(p.P) >= 1<<30 {
		return fmt.Errorf("%w: invalid parameters %v", ErrCorrupt, p)
	}
	return nil
}

// ValidateForWriting accepts the ranges `scrypt enc --logN/-r/-p` accepts
// (logN 10–40, r and p 1–32), so that every file we write can be decrypted
// by the scrypt tool too.
func (p Params) ValidateForWriting() error {
	if p.LogN < 10 || p.LogN > 40 || p.R < 1 || p.R > 32 || p.P < 1 || p.P > 32 {
		return fmt.Errorf("scrypt parameters %v out of range (logN 10-40, r 1-32, p 1-32)", p)
	}
	return nil
}

// Limits bound what a header read from untrusted input may make us spend
// before the passphrase is even checked.
type Limits struct {
	MaxMemory uint64 // bytes, 128·r·N
	MaxWork   uint64 // N·r·p
	Force     bool   // ignore both limits (like `scrypt dec -f`)
}

// DefaultLimits admit what `scrypt enc` chooses on hosts with up to 32 GiB
// of memory (at most logN 22, r 8: 4 GiB; logN 21 on 24 GiB) and on
// small-memory hosts that raise p instead, while refusing headers that would
// take more memory or minutes per chunk.
var DefaultLimits = Limits{MaxMemory: 4 << 30, MaxWork: 1 << 27}

// Check returns ErrTooExpensive when p exceed the limits.
func (l Limits) Check(p Params) error {
	if l.Force {
		return nil
	}
	if exceeds(128*uint64(p.R), p.LogN, l.MaxMemory) {
		need, limit := byteSizes(amount(128*uint64(p.R), p.LogN), l.MaxMemory)
		return fmt.Errorf("%w: %v needs %s of memory (limit %s)", ErrTooExpensive, p, need, limit)
	}
	if p.LogN > 40 {
		return fmt.Errorf("%w: %v: logN above 40, the most the scrypt tool accepts", ErrTooExpensive, p)
	}
	if exceeds(uint64(p.R)*uint64(p.P), p.LogN, l.MaxWork) {
		return fmt.Errorf("%w: %v needs N·r·p = %s (limit %d)", ErrTooExpensive, p,
			count(uint64(p.R)*uint64(p.P), p.LogN), l.MaxWork)
	}
	return nil
}

// count writes x·2^k exactly when it fits in 64 bits, else as 2^k·x.
func count(x uint64, k uint8) string {
	if exceeds(x, k, math.MaxUint64) {
		return fmt.Sprintf("2^%d·%d", k, x)
	}
	return strconv.FormatUint(x<<k, 10)
}

// byteSizes writes two byte counts in binary units, with the exact byte
// counts added when the rounded forms would read the same.
func byteSizes(need float64, limit uint64) (string, string) {
	a, b := binarySize(need), binarySize(float64(limit))
	if a == b {
		return fmt.Sprintf("%s (%.0f bytes)", a, need), fmt.Sprintf("%s (%d bytes)", b, limit)
	}
	return a, b
}

func binarySize(v float64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + units[i]
}

// Header is the parsed, checksum-verified 96-byte file header.
type Header struct {
	Params Params
	raw    [HeaderSize]byte
}

// ParseHeader checks magic, version, checksum and parameter sanity. It does
// not need the passphrase and costs nothing.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < 7 || !bytes.Equal(b[:6], magic[:6]) {
		return h, ErrNotScrypt
	}
	if b[6] != 0 {
		return h, fmt.Errorf("%w: %d", ErrUnsupportedVersion, b[6])
	}
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: header truncated at %d bytes", ErrCorrupt, len(b))
	}
	copy(h.raw[:], b[:HeaderSize])
	sum := sha256.Sum256(h.raw[:48])
	if !bytes.Equal(sum[:16], h.raw[48:64]) {
		return h, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	h.Params = Params{
		LogN: h.raw[7],
		R:    binary.BigEndian.Uint32(h.raw[8:12]),
		P:    binary.BigEndian.Uint32(h.raw[12:16]),
	}
	if err := h.Params.sane(); err != nil {
		return h, err
	}
	return h, nil
}

// Estimate is about how long one derivation with p takes on this machine:
// a derivation at a small cost, timed, scaled by N·r·p (the work grows
// with it linearly), at least 1 ms measured.
func Estimate(p Params) time.Duration {
	const probe = 12 // logN 12, r 8: 4 MiB, a few milliseconds
	estimateOnce.Do(func() {
		start := time.Now()
		kdf([]byte("estimate"), make([]byte, 32), probe, 8, 1)
		estimateProbe = max(time.Since(start), time.Millisecond)
	})
	ratio := float64(p.Work()) / float64(uint64(8)<<probe)
	return time.Duration(float64(estimateProbe) * ratio)
}

var (
	estimateOnce  sync.Once
	estimateProbe time.Duration
)

// Key is a derived key bound to one header (one salt). It encrypts or
// decrypts exactly one file.
type Key struct {
	header [HeaderSize]byte
	enc    [32]byte
	mac    [32]byte
}

// take takes the derived 64 bytes as the key's, and clears them.
func (k *Key) take(dk []byte) {
	copy(k.enc[:], dk[:32])
	copy(k.mac[:], dk[32:])
	clear(dk)
}

// derivable refuses parameters no derivation here can run. Even forced
// (Limits.Force skips Check), a derivation must be one this process can
// allocate: the scratch area is 128·r·N bytes and the PBKDF2 block
// 128·r·p. Beyond that, make would panic.
func derivable(p Params) error {
	if err := p.sane(); err != nil {
		return err
	}
	// sane bounds r·p below 2^30, so 128·r·p cannot wrap.
	if p.LogN > 40 || exceeds(128*uint64(p.R), p.LogN, maxScratch) || 128*uint64(p.R)*uint64(p.P) > maxScratch {
		return fmt.Errorf("%w: parameters %v cannot be derived", ErrTooExpensive, p)
	}
	return nil
}

// NewKey derives a fresh key with a random salt for encrypting one file.
// This is the expensive step; callers run it ahead of the data.
func NewKey(pass []byte, p Params) (*Key, error) {
	k, err := newKeyHeader(p)
	if err != nil {
		return nil, err
	}
	if err := derivable(p); err != nil {
		return nil, err
	}
	dk, err := pairedKDF(context.Background(), pass, k.header[16:48], p)
	if err != nil {
		return nil, err
	}
	k.finish(dk)
	return k, nil
}

// NewKeyPair derives two fresh keys of the same parameters at once: with
// AVX2 in the two lanes of one core (kdf2), in about 1.07 times the time of
// one, where two NewKey calls share a core only if the second comes while
// the first runs.
func NewKeyPair(passA, passB []byte, p Params) (*Key, *Key, error) {
	a, err := newKeyHeader(p)
	if err != nil {
		return nil, nil, err
	}
	b, err := newKeyHeader(p)
	if err != nil {
		return nil, nil, err
	}
	if err := derivable(p); err != nil {
		return nil, nil, err
	}
	dkA, dkB := kdf2(passA, a.header[16:48], passB, b.header[16:48], p.LogN, int(p.R), int(p.P))
	a.finish(dkA)
	b.finish(dkB)
	return a, b, nil
}

// newKeyHeader makes a key's 96-byte header with a random salt, all but
// its HMAC.
func newKeyHeader(p Params) (*Key, error) {
	if err := p.sane(); err != nil {
		return nil, err
	}
	k := &Key{}
	h := k.header[:]
	copy(h, magic)
	h[7] = p.LogN
	binary.BigEndian.PutUint32(h[8:12], p.R)
	binary.BigEndian.PutUint32(h[12:16], p.P)
	if _, err := rand.Read(h[16:48]); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(h[:48])
	copy(h[48:64], sum[:16])
	return k, nil
}

// finish takes the derived 64 bytes as the key and signs the header.
func (k *Key) finish(dk []byte) {
	k.take(dk)
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(k.header[:64])
	copy(k.header[64:96], m.Sum(nil))
}

// DeriveKey derives the key for an existing header and proves the
// passphrase with the header HMAC. Check the limits first.
func (h Header) DeriveKey(pass []byte) (*Key, error) {
	return h.DeriveKeyContext(context.Background(), pass)
}

// DeriveKeyContext is DeriveKey that gives up when ctx ends, returning
// its error: a derivation takes seconds and a work area of hundreds of
// MiB, which a cancelled caller should not keep busy.
func (h Header) DeriveKeyContext(ctx context.Context, pass []byte) (*Key, error) {
	if err := derivable(h.Params); err != nil {
		return nil, err
	}
	dk, err := pairedKDF(ctx, pass, h.raw[16:48], h.Params)
	if err != nil {
		return nil, err
	}
	return h.proven(dk)
}

// SpareKey is a key being derived ahead of need, in the lanes that
// derivations callers wait for leave free (see DeriveSpare).
type SpareKey struct {
	h Header
	s *spare
}

// DeriveSpare starts deriving h's key for pass in spare lanes only: beside
// other derivations, at next to no cost to them, and not at all while
// none runs. Key then waits for it, as an ordinary derivation from where
// it got to. It returns nil where no core has a spare lane (no AVX2) or
// the parameters cannot be derived. Check the limits first; the work area
// is held until the key is taken or dropped.
func (h Header) DeriveSpare(pass []byte) *SpareKey {
	s := newSpare(pass, h.raw[16:48], h.Params)
	if s == nil {
		return nil
	}
	return &SpareKey{h: h, s: s}
}

// Done is closed once the derivation has finished or was dropped.
func (k *SpareKey) Done() <-chan struct{} { return k.s.Done() }

// Key is DeriveKeyContext for the header given to DeriveSpare.
func (k *SpareKey) Key(ctx context.Context) (*Key, error) {
	dk, err := k.s.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return k.h.proven(dk)
}

// Drop gives the derivation up, or forgets the key.
func (k *SpareKey) Drop() { k.s.Drop() }

// proven returns the key derived as dk for h, once the header's HMAC
// proves it, the passphrase and the header right.
func (h Header) proven(dk []byte) (*Key, error) {
	k := &Key{header: h.raw}
	k.take(dk)
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(h.raw[:64])
	if !hmac.Equal(m.Sum(nil), h.raw[64:96]) {
		return nil, ErrBadPassphrase
	}
	return k, nil
}

// Subkey derives a key for another purpose from this file's HMAC key
// (HMAC-SHA256 keyed with it over label), so that data tied to this file
// can be authenticated without another expensive derivation. Distinct
// labels give independent keys.
func (k *Key) Subkey(label string) []byte {
	m := hmac.New(sha256.New, k.mac[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Header returns the 96 header bytes that precede the ciphertext.
func (k *Key) Header() []byte { return bytes.Clone(k.header[:]) }

// stepSize keeps CTR and HMAC working on the same cache-warm slice, and
// gives the scheduler a preemption point between slices.
const stepSize = 256 << 10

func (k *Key) ctr() cipher.Stream {
	block, err := aes.NewCipher(k.enc[:])
	if err != nil {
		panic(err) // a 32-byte key cannot fail
	}
	// The format's counter block is an 8-byte zero nonce followed by the
	// big-endian block number, which is exactly CTR with a zero IV.
	return cipher.NewCTR(block, make([]byte, aes.BlockSize))
}

// SealInPlace encrypts buf in place and returns the trailer to write after
// it. The file is Header() ‖ buf ‖ trailer.
func (k *Key) SealInPlace(buf []byte) [TrailerSize]byte {
	stream := k.ctr()
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(k.header[:])
	for off := 0; off < len(buf); off += stepSize {
		part := buf[off:min(off+stepSize, len(buf))]
		stream.XORKeyStream(part, part)
		m.Write(part)
	}
	var t [TrailerSize]byte
	copy(t[:], m.Sum(nil))
	return t
}

// OpenInPlace takes everything after the header (ciphertext ‖ trailer),
// verifies the trailer over header and ciphertext, and only then decrypts
// in place. It returns the plaintext, a prefix of body.
func (k *Key) OpenInPlace(body []byte) ([]byte, error) {
	if len(body) < TrailerSize {
		return nil, fmt.Errorf("%w: truncated before the trailing HMAC", ErrCorrupt)
	}
	data, trailer := body[:len(body)-TrailerSize], body[len(body)-TrailerSize:]
	// In steps, not one call each: the hash and cipher run in assembly,
	// where the runtime cannot preempt them, and a 100 MiB chunk in one
	// call would hold a garbage collection's stop-the-world for tens of
	// milliseconds.
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(k.header[:])
	for off := 0; off < len(data); off += stepSize {
		m.Write(data[off:min(off+stepSize, len(data))])
	}
	if !hmac.Equal(m.Sum(nil), trailer) {
		return nil, fmt.Errorf("%w: HMAC mismatch (data altered or truncated)", ErrCorrupt)
	}
	stream := k.ctr()
	for off := 0; off < len(data); off += stepSize {
		part := data[off:min(off+stepSize, len(data))]
		stream.XORKeyStream(part, part)
	}
	return data, nil
}

// Encrypt writes the scrypt file for plaintext to w with a fresh key. It
// encrypts a copy; plaintext is left as it was.
func Encrypt(w io.Writer, pass, plaintext []byte, p Params) error {
	k, err := NewKey(pass, p)
	if err != nil {
		return err
	}
	buf := bytes.Clone(plaintext)
	trailer := k.SealInPlace(buf)
	for _, part := range [][]byte{k.header[:], buf, trailer[:]} {
		if _, err := w.Write(part); err != nil {
			return err
		}
	}
	return nil
}

// Decrypt reads a whole scrypt file of at most maxPlain plaintext bytes from
// r and returns the plaintext only after every check has passed, so no
// unauthenticated byte is ever released.
func Decrypt(r io.Reader, pass []byte, limits Limits, maxPlain int64) ([]byte, error) {
	file, err := io.ReadAll(io.LimitReader(r, Overhead+maxPlain+1))
	if err != nil {
		return nil, err
	}
	if int64(len(file)) > Overhead+maxPlain {
		return nil, fmt.Errorf("%w: more than %d bytes of plaintext", ErrCorrupt, maxPlain)
	}
	return Open(file, pass, limits)
}

// Open decrypts a whole scrypt file held in memory, in place: the returned
// plaintext shares file's storage. Limits are checked before the key is
// derived, the passphrase before any data is touched, and the trailer
// before decryption.
func Open(file []byte, pass []byte, limits Limits) ([]byte, error) {
	h, err := ParseHeader(file)
	if err != nil {
		return nil, err
	}
	if err := limits.Check(h.Params); err != nil {
		return nil, err
	}
	k, err := h.DeriveKey(pass)
	if err != nil {
		return nil, err
	}
	return k.OpenInPlace(file[HeaderSize:])
}

// Writer streams an encryption: the header first, ciphertext as it comes,
// the trailer on Close.
type Writer struct {
	w      io.Writer
	stream cipher.Stream
	mac    hashWriter
	buf    []byte
	err    error
	closed bool
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

// NewWriter writes the header of a new file encrypted under k to w. Use
// each Key for one file only.
func NewWriter(w io.Writer, k *Key) (*Writer, error) {
	m := hmac.New(sha256.New, k.mac[:])
	m.Write(k.header[:])
	if _, err := w.Write(k.header[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w, stream: k.ctr(), mac: m}, nil
}

func (sw *Writer) Write(p []byte) (int, error) {
	if sw.err != nil {
		return 0, sw.err
	}
	if sw.closed {
		return 0, errors.New("scryptenc: write after close")
	}
	done := 0
	for done < len(p) {
		n := min(len(p)-done, stepSize)
		if cap(sw.buf) < n {
			sw.buf = make([]byte, stepSize)
		}
		out := sw.buf[:n]
		sw.stream.XORKeyStream(out, p[done:done+n])
		sw.mac.Write(out)
		if _, err := sw.w.Write(out); err != nil {
			sw.err = err
			return done, err
		}
		done += n
	}
	return done, nil
}

// Close writes the trailer. It does not close the underlying writer.
func (sw *Writer) Close() error {
	if sw.err != nil || sw.closed {
		return sw.err
	}
	sw.closed = true
	_, sw.err = sw.w.Write(sw.mac.Sum(nil))
	return sw.err
}
