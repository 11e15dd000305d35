package testutil

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// SameSparse finds a difference in the data of either file and in length,
// and none between equal sparse files.
func TestSameSparse(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	WriteSparse(t, a, 8<<20, rand.New(rand.NewPCG(1, 2)), [2]int64{1 << 20, 64 << 10})
	WriteSparse(t, b, 8<<20, rand.New(rand.NewPCG(1, 2)), [2]int64{1 << 20, 64 << 10})
	if err := SameSparse(a, b); err != nil {
		t.Fatalf("equal files: %v", err)
	}
	f, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{1}, 6<<20); err != nil { // in a hole of a: only b has data there
		t.Fatal(err)
	}
	if err := SameSparse(a, b); err == nil {
		t.Error("a byte in b's data, a's hole: no difference found")
	}
	if err := f.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	if err := SameSparse(a, b); err == nil {
		t.Error("different lengths: no difference found")
	}
}
