package testutil

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// WriteSparse makes a file of size bytes (and its directory) with random,
// incompressible data at the given offset/length runs and holes elsewhere.
func WriteSparse(t testing.TB, path string, size int64, rng *rand.Rand, runs ...[2]int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		b := make([]byte, r[1])
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if _, err := f.WriteAt(b, r[0]); err != nil {
			t.Fatal(err)
		}
	}
}
