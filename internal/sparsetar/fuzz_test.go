package sparsetar

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seeds returns small archives, valid and hostile, to start fuzzing from.
// They are kept to a few KiB: the fuzzer minimizes slowly on larger ones.
func seeds(t testing.TB) [][]byte {
	// A sparse member with two tiny regions and a trailing hole.
	hdr, spMap, _, err := sparseHeaders("p/v", 300, []region{{0, 10}, {100, 5}}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte("0123456789abcde"), make([]byte, 512-15+1024)...)
	volume := append(append(hdr, spMap...), data...)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.AddBytes("p/v", []byte("qubes.xml"), 0o644, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		volume,
		buf.Bytes(),
		tarOf(t, dir("p/"), reg("p/v", "x"), symlink("p/l", "v"), hardlink("p/h", "p/v"), dir("p/d/"), reg("p/d/f", "y")),
		tarOf(t, symlink("p/a", "/tmp"), reg("p/a/evil", "x")),
		tarOf(t, symlink("p/a", ".."), reg("p/a/evil", "x")),
		tarOf(t, reg("p/../evil", "x"), reg("/evil", "x")),
		tarOf(t, hardlink("p/h", "/etc/passwd")),
		{},
	}
}

func FuzzExtractFile(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var dst bytes.Buffer
		n, err := ExtractFile(bytes.NewReader(data), "p/v", &dst, 1<<20)
		if n != int64(dst.Len()) || dst.Len() > 1<<20 {
			t.Fatalf("returned %d, wrote %d (limit 1 MiB)", n, dst.Len())
		}
		if err == nil && n == 0 && len(data) == 0 {
			t.Fatal("empty input accepted")
		}
	})
}

func FuzzExtractTree(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		extractErr := ExtractTree(bytes.NewReader(data), "p", out, 1<<20)
		// Verification promises what extraction does: both accept, or
		// both refuse.
		if _, readErr := ReadTree(bytes.NewReader(data), "p", 1<<20); (readErr == nil) != (extractErr == nil) {
			t.Fatalf("ReadTree: %v; ExtractTree: %v", readErr, extractErr)
		}
		// Whatever happened, nothing may appear beside out: seeds aim at
		// "..", so parent is where an escape would land first.
		names, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n.Name() != "out" {
				t.Fatalf("%s created outside the target", n.Name())
			}
		}
		var size int64
		filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				fi, _ := d.Info()
				size += fi.Size()
			}
			return nil
		})
		if size > 1<<20 {
			t.Fatalf("extracted %d bytes, limit 1 MiB", size)
		}
	})
}

// The hole-skipping path of ExtractFile (holes.go) and archive/tar's own
// reading agree on every input: both fail, or both give the same content.
func FuzzExtractFileHoles(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 20
		// A hash.Hash is neither a SparseWriter nor io.Discard: archive/tar's path.
		ref := sha256.New()
		n1, err1 := ExtractFile(bytes.NewReader(data), "p/v", ref, limit)
		n2, err2 := ExtractFile(bytes.NewReader(data), "p/v", io.Discard, limit)
		out, err := os.CreateTemp(dir, "out")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(out.Name())
		defer out.Close()
		sw := NewSparseWriter(out)
		n3, err3 := ExtractFile(bytes.NewReader(data), "p/v", sw, limit)
		if (err1 == nil) != (err2 == nil) || (err1 == nil) != (err3 == nil) {
			t.Fatalf("archive/tar: %v; into io.Discard: %v; into a SparseWriter: %v", err1, err2, err3)
		}
		if err1 != nil {
			return
		}
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		got := sha256.New()
		if _, err := io.Copy(got, io.NewSectionReader(out, 0, n3)); err != nil {
			t.Fatal(err)
		}
		if n1 != n2 || n1 != n3 || !bytes.Equal(ref.Sum(nil), got.Sum(nil)) {
			t.Fatalf("lengths %d %d %d, or contents differ", n1, n2, n3)
		}
	})
}
