package sparsetar

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pedos.dev/backup/internal/testutil"
)

// span is data written at an offset of a test file; the rest is holes.
type span struct {
	off int64
	n   int
}

// makeSparse creates path with the given size and random data at spans,
// and returns the expected content.
func makeSparse(t testing.TB, path string, size int64, spans ...span) []byte {
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
	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for _, s := range spans {
		b := make([]byte, s.n)
		for i := range b {
			b[i] = byte(rng.IntN(255) + 1) // never zero, so data stays data
		}
		if _, err := f.WriteAt(b, s.off); err != nil {
			t.Fatal(err)
		}
		copy(want[s.off:], b)
	}
	return want
}

// allocated returns the bytes a file occupies on disk.
func allocated(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// volumeArchive stores path as name with AddVolume and returns the stream
// and the data byte count.
func volumeArchive(t testing.TB, name, path string) ([]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	n, err := w.AddVolume(name, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), n
}

// gnuTar runs GNU tar in dir and returns its standard output.
func gnuTar(t testing.TB, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(testutil.RequireTool(t, "tar"), args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tar %q: %v\n%s", args, err, stderr.Bytes())
	}
	// GNU tar prints warnings (bad checksum, lone zero block, ...) on
	// stderr and may still exit 0: treat any as a failure.
	if stderr.Len() > 0 {
		t.Fatalf("tar %q wrote to stderr:\n%s", args, stderr.Bytes())
	}
	return stdout.Bytes()
}

// entry is one member of a hand-made test archive.
type entry struct {
	hdr  tar.Header
	body string
}

func reg(name, body string) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}, body}
}

func dir(name string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func symlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

// tarOf builds an archive with archive/tar, which writes whatever names it
// is given: exactly what a hostile archive needs.
func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = time.Unix(1700000000, 0)
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
