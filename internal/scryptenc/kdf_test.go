package scryptenc

import (
	"bytes"
	"encoding/hex"
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
