package sparsetar

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type byteCount int64

func (c *byteCount) Write(p []byte) (int, error) { *c += byteCount(len(p)); return len(p), nil }

// The sizes known in advance are exactly what the Writer then writes.
func TestSizesMatchWriter(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	makeSparse(t, img, 9<<20, span{0, 700}, span{4 << 20, 5000}, span{9<<20 - 1, 1})
	home := filepath.Join(dir, "home")
	long := filepath.Join(home, strings.Repeat("long directory name/", 6), "file with a long name.txt")
	os.MkdirAll(filepath.Dir(long), 0o755)
	os.WriteFile(long, []byte("x"), 0o644)
	os.WriteFile(filepath.Join(home, "Grüße → café.txt"), []byte("non-ASCII"), 0o600)
	os.Symlink(strings.Repeat("../", 60)+"target", filepath.Join(home, "long link"))
	os.WriteFile(filepath.Join(home, strings.Repeat("n", 150)), make([]byte, 1234), 0o644)

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range []string{"vm3/private.img", "vm3/" + strings.Repeat("v", 60) + ".img"} {
		want, data, err := VolumeSize(name, f)
		if err != nil {
			t.Fatal(err)
		}
		var n byteCount
		tw := NewWriter(&n)
		stored, err := tw.AddVolume(name, f)
		if err != nil || tw.Close() != nil {
			t.Fatal(err)
		}
		if int64(n) != want+EndSize || stored != data {
			t.Errorf("%s: wrote %d (data %d), VolumeSize said %d+%d (data %d)", name, n, stored, want, EndSize, data)
		}
	}
	for _, name := range []string{"qubes.xml", "vm3/" + strings.Repeat("f", 130), "vm3/café"} {
		want, err := FileSize(name, 777, 0o644, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		var n byteCount
		tw := NewWriter(&n)
		if err := tw.AddBytes(name, make([]byte, 777), 0o644, time.Unix(1700000000, 0)); err != nil || tw.Close() != nil {
			t.Fatal(err)
		}
		if int64(n) != want+EndSize {
			t.Errorf("%s: wrote %d, FileSize said %d+%d", name, n, want, EndSize)
		}
	}
	want, err := TreeSize("dom0-home/user", home)
	if err != nil {
		t.Fatal(err)
	}
	var n byteCount
	tw := NewWriter(&n)
	if err := tw.AddTree("dom0-home/user", home); err != nil || tw.Close() != nil {
		t.Fatal(err)
	}
	if int64(n) != want+EndSize {
		t.Errorf("tree: wrote %d, TreeSize said %d+%d", n, want, EndSize)
	}
}

// ReadTree checks a tree stream as ExtractTree would, writing nothing.
func TestReadTree(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	os.MkdirAll(filepath.Join(home, "docs"), 0o755)
	os.WriteFile(filepath.Join(home, "docs", "a.txt"), []byte("hello"), 0o644)
	os.Symlink("docs/a.txt", filepath.Join(home, "link"))
	var buf bytes.Buffer
	tw := NewWriter(&buf)
	if err := tw.AddTree("dom0-home/user", home); err != nil || tw.Close() != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	if n, err := ReadTree(bytes.NewReader(stream), "dom0-home/user", 1<<20); err != nil || n != 5 {
		t.Fatalf("good tree: %d bytes, %v", n, err)
	}
	if _, err := ReadTree(bytes.NewReader(stream), "dom0-home/other", 1<<20); !errors.Is(err, ErrUnsafeName) {
		t.Fatalf("other prefix: %v", err)
	}
	if _, err := ReadTree(bytes.NewReader(stream), "dom0-home/user", 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	for _, cut := range []int{100, 600, len(stream) - 1024, len(stream) - 1} {
		if _, err := ReadTree(bytes.NewReader(stream[:cut]), "dom0-home/user", 1<<20); err == nil {
			t.Fatalf("cut at %d of %d: no error", cut, len(stream))
		}
	}
}
