package scryptenc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func FuzzDecrypt(f *testing.F) {
	vector, _ := hex.DecodeString(vectorHex)
	f.Add(vector)
	f.Add(vector[:96])
	f.Add([]byte("scrypt\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		plain, err := Decrypt(bytes.NewReader(data), []byte(vectorPass), DefaultLimits, 1<<20)
		if err == nil {
			// Only the real vector (or another file under the same key,
			// which the fuzzer cannot forge) may decrypt.
			if !bytes.Equal(plain, []byte("hello qubes\n")) {
				t.Fatalf("forged plaintext %q accepted", plain)
			}
			return
		}
		for _, known := range []error{ErrNotScrypt, ErrUnsupportedVersion, ErrCorrupt, ErrBadPassphrase, ErrTooExpensive} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("error outside the documented set: %v", err)
	})
}
