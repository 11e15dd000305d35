package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// members splits our gzip output into its members by their length fields.
func members(t *testing.T, z []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(z) > 0 {
		if len(z) < memberHeader || z[12] != 'P' || z[13] != 'D' {
			t.Fatalf("member without our length field at %d bytes from the end", len(z))
		}
		n := int(binary.LittleEndian.Uint32(z[16:]))
		out = append(out, z[:n])
		z = z[n:]
	}
	return out
}

// Our gzip is one member per MiB of input, each with its length, and any
// gzip reader (here the sequential one; `gzip -d` in the interop tests)
// reads the members as one stream.
func TestGzipMembers(t *testing.T) {
	checkGoroutines(t)
	data := mixedData(3<<20+12345, 4)
	z := compressWith(t, mustForWriting(t, "gzip"), data)
	if got := len(members(t, z)); got != 4 {
		t.Fatalf("%d members for 3 MiB + a bit, want 4", got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("sequential reader: %v, equal %v", err, bytes.Equal(got, data))
	}
	if got, err := decompressWith(mustForReading(t, "gzip", false), z); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("parallel reader: %v", err)
	}
	// Empty input still makes a valid gzip file.
	empty := compressWith(t, mustForWriting(t, "gzip"), nil)
	if got, err := decompressWith(mustForReading(t, "gzip", false), empty); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q %v", got, err)
	}
}

// The parallel reader trusts nothing in a member: a wrong length, CRC or
// size is an error, and a stream cut inside a member is truncated.
func TestGzipMembersDamaged(t *testing.T) {
	checkGoroutines(t)
	data := mixedData(2<<20+100, 5)
	z := compressWith(t, mustForWriting(t, "gzip"), data)
	ms := members(t, z)
	second := len(ms[0])
	cases := map[string]func([]byte){
		"length too small": func(b []byte) { binary.LittleEndian.PutUint32(b[second+16:], uint32(len(ms[1])-7)) },
		"length too large": func(b []byte) { binary.LittleEndian.PutUint32(b[second+16:], uint32(len(ms[1])+7)) },
		"crc":              func(b []byte) { b[second+len(ms[1])-8] ^= 1 },
		"isize":            func(b []byte) { b[second+len(ms[1])-1] ^= 1 },
		"deflate data":     func(b []byte) { b[second+100] ^= 0x55 },
	}
	for name, damage := range cases {
		b := bytes.Clone(z)
		damage(b)
		got, err := decompressWith(mustForReading(t, "gzip", false), b)
		if err == nil && bytes.Equal(got, data) {
			t.Errorf("%s: damage not noticed", name)
		} else if err == nil {
			t.Errorf("%s: wrong output without an error", name)
		}
	}
	// A length no member of ours can have is not ours: that member and the
	// rest are read sequentially, still correctly.
	b := bytes.Clone(z)
	binary.LittleEndian.PutUint32(b[second+16:], 1<<30)
	if got, err := decompressWith(mustForReading(t, "gzip", false), b); err != nil || !bytes.Equal(got, data) {
		t.Errorf("implausible length field: %v", err)
	}
	for _, cut := range []int{second - 1, second + 5, second + memberHeader, len(z) - 1} {
		if _, err := decompressWith(mustForReading(t, "gzip", false), z[:cut]); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d of %d: %v, want io.ErrUnexpectedEOF", cut, len(z), err)
		}
	}
}

// Members of ours followed by an ordinary gzip stream (outputs appended)
// read whole: the sequential reader takes over where the length fields end.
func TestGzipMembersThenPlainGzip(t *testing.T) {
	checkGoroutines(t)
	a, b := mixedData(1<<20+10, 6), mixedData(5000, 7)
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	zw.Write(b)
	zw.Close()
	z := append(compressWith(t, mustForWriting(t, "gzip"), a), plain.Bytes()...)
	got, err := decompressWith(mustForReading(t, "gzip", false), z)
	if err != nil || !bytes.Equal(got, append(bytes.Clone(a), b...)) {
		t.Fatalf("%v, %d bytes", err, len(got))
	}
}

// Closing the reader in the middle stops its read-ahead goroutines.
func TestGzipMembersCloseEarly(t *testing.T) {
	checkGoroutines(t)
	z := compressWith(t, mustForWriting(t, "gzip"), mixedData(8<<20, 8))
	r, err := mustForReading(t, "gzip", false).NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, r, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkGzipReaderParallel(b *testing.B) {
	data := mixedData(64<<20, 9)
	z := compressWith(b, mustForWriting(b, "gzip"), data)
	c := mustForReading(b, "gzip", false)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, _ := c.NewReader(bytes.NewReader(z))
		io.Copy(io.Discard, r)
		r.Close()
	}
}
