package testutil

import (
	"bytes"
	"fmt"
	"io"
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

// SameSparse compares two sparse files byte for byte: their lengths, and
// their content wherever either has data (elsewhere both read as zeros),
// so multi-GiB images compare without reading their holes. It says where
// they differ. (It finds data with lseek itself: sparsetar's own tests use
// this package.)
func SameSparse(pathA, pathB string) error {
	a, err := os.Open(pathA)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := os.Open(pathB)
	if err != nil {
		return err
	}
	defer b.Close()
	sa, err := a.Stat()
	if err != nil {
		return err
	}
	sb, err := b.Stat()
	if err != nil {
		return err
	}
	if sa.Size() != sb.Size() {
		return fmt.Errorf("%s and %s differ in length: %d, %d", pathA, pathB, sa.Size(), sb.Size())
	}
	for _, f := range []*os.File{a, b} {
		for off := int64(0); off < sa.Size(); {
			start, err := f.Seek(off, seekData)
			if err != nil {
				break // ENXIO: no data after off
			}
			end, err := f.Seek(start, seekHole)
			if err != nil {
				return err
			}
			da, db := make([]byte, end-start), make([]byte, end-start)
			if _, err := a.ReadAt(da, start); err != nil && err != io.EOF {
				return err
			}
			if _, err := b.ReadAt(db, start); err != nil && err != io.EOF {
				return err
			}
			if !bytes.Equal(da, db) {
				return fmt.Errorf("%s and %s differ in [%d, %d)", pathA, pathB, start, end)
			}
			off = end
		}
	}
	return nil
}

// lseek's whence values for sparse files (Linux).
const (
	seekData = 3
	seekHole = 4
)
