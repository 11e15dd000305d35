package sparsetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const mib = 1 << 20

var volumeCases = []struct {
	name   string
	size   int64
	spans  []span
	sparse bool // expect the copies to take far less space than size
}{
	{"data at start and middle, trailing hole", 64 * mib, []span{{0, 5}, {10 * mib, 4096}, {33*mib + 100, 70000}}, true},
	{"data at the very end", 64 * mib, []span{{0, 4096}, {64*mib - 100, 100}}, true},
	{"only a late block, ends in hole", 64 * mib, []span{{mib, 1}}, true},
	{"all hole", 64 * mib, nil, true},
	{"dense", 3*mib + 123, []span{{0, 3*mib + 123}}, false},
	{"empty", 0, nil, false},
	{"data end not 512-aligned", 64*mib + 333, []span{{64*mib - 1000, 1333}}, true},
	{"many regions", 8 * mib, manySpans(40), true},
}

// manySpans returns n one-block spans every 128 KiB: more regions than
// fit in one sparse-map block.
func manySpans(n int) []span {
	var s []span
	for i := range n {
		s = append(s, span{int64(i) * 128 << 10, 4096})
	}
	return s
}

// checkSparse fails if a copy of a sparse test file is not sparse too.
func checkSparse(t *testing.T, what, orig, copy string, sparse bool) {
	t.Helper()
	if !sparse {
		return
	}
	// Same allocation as the original, give or take a few blocks.
	if got, want := allocated(t, copy), allocated(t, orig); got > want+64<<10 {
		t.Errorf("%s: allocates %d bytes, original %d: not sparse", what, got, want)
	}
}

func TestAddVolume(t *testing.T) {
	for _, tc := range volumeCases {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			orig := filepath.Join(src, "vm3", "private.img")
			want := makeSparse(t, orig, tc.size, tc.spans...)
			archive, data := volumeArchive(t, "vm3/private.img", orig)
			if data < int64(len(tc.spans)) || data > tc.size {
				t.Errorf("AddVolume reported %d data bytes for a %d-byte file", data, tc.size)
			}
			if len(archive)%512 != 0 {
				t.Fatalf("archive length %d is not block aligned", len(archive))
			}

			t.Run("gnu tar -xf", func(t *testing.T) {
				out := t.TempDir()
				gnuTar(t, out, archive, "-xf", "-")
				got := filepath.Join(out, "vm3", "private.img")
				assertFile(t, got, want)
				checkSparse(t, "tar -xf", orig, got, tc.sparse)
			})
			t.Run("gnu tar -xOf", func(t *testing.T) {
				got := gnuTar(t, t.TempDir(), archive, "-xOf", "-", "vm3/private.img")
				if !bytes.Equal(got, want) {
					t.Errorf("tar -xOf: content differs (%d bytes, want %d)", len(got), len(want))
				}
			})
			t.Run("gnu tar -tvf", func(t *testing.T) {
				list := string(gnuTar(t, t.TempDir(), archive, "-tvf", "-"))
				if !strings.Contains(list, " "+strconv.FormatInt(tc.size, 10)+" ") || !strings.HasSuffix(list, " vm3/private.img\n") {
					t.Errorf("tar -tvf listing %q lacks the real name and size", list)
				}
			})
			t.Run("archive/tar", func(t *testing.T) {
				tr := tar.NewReader(bytes.NewReader(archive))
				hdr, err := tr.Next()
				if err != nil {
					t.Fatal(err)
				}
				if hdr.Name != "vm3/private.img" || hdr.Size != tc.size {
					t.Errorf("header name %q size %d", hdr.Name, hdr.Size)
				}
				got, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("content differs (err %v)", err)
				}
				if _, err := tr.Next(); err != io.EOF {
					t.Errorf("after the member: %v, want io.EOF", err)
				}
			})
			t.Run("ExtractFile", func(t *testing.T) {
				got := filepath.Join(t.TempDir(), "restored.img")
				f, err := os.Create(got)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				sw := NewSparseWriter(f)
				n, err := ExtractFile(bytes.NewReader(archive), "vm3/private.img", sw, tc.size)
				if err != nil || n != tc.size {
					t.Fatalf("ExtractFile = %d, %v", n, err)
				}
				if err := sw.Close(); err != nil {
					t.Fatal(err)
				}
				assertFile(t, got, want)
				checkSparse(t, "ExtractFile", orig, got, tc.sparse)
			})
		})
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content differs (%d bytes, want %d)", path, len(got), len(want))
	}
}

// The member must be laid out as GNU tar --sparse --posix lays it out.
func TestAddVolumeLayout(t *testing.T) {
	src := t.TempDir()
	orig := filepath.Join(src, "vm3", "private.img")
	makeSparse(t, orig, 64*mib, span{0, 5}, span{10 * mib, 5})
	mtime := time.Unix(1700000000, 0)
	if err := os.Chtimes(orig, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	archive, _ := volumeArchive(t, "vm3/private.img", orig)

	pax := "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n35 GNU.sparse.name=vm3/private.img\n32 GNU.sparse.realsize=67108864\n"
	spMap := "3\n0\n4096\n10485760\n4096\n67108864\n0\n"
	checks := []struct {
		what     string
		off, len int
		want     string
	}{
		{"pax name", 0, 100, "vm3/PaxHeaders/private.img"},
		{"pax size", 124, 12, "00000000157\x00"},
		{"pax type", 156, 1, "x"},
		{"pax records", 512, len(pax), pax},
		{"name", 1024, 100, "vm3/GNUSparseFile.0/private.img"},
		{"mode", 1024 + 100, 8, "0000644\x00"},
		{"uid", 1024 + 108, 8, "0000000\x00"},
		{"size", 1024 + 124, 12, "00000021000\x00"}, // map block + 2 data blocks
		{"mtime", 1024 + 136, 12, "14524770400\x00"},
		{"type", 1024 + 156, 1, "0"},
		{"magic", 1024 + 257, 8, "ustar\x0000"},
		{"map", 1536, len(spMap), spMap},
	}
	for _, c := range checks {
		got := strings.TrimRight(string(archive[c.off:c.off+c.len]), "\x00")
		if got != strings.TrimRight(c.want, "\x00") {
			t.Errorf("%s = %q, want %q", c.what, got, c.want)
		}
	}
	// Checksum: six octal digits, NUL, space over the block with the
	// field taken as spaces.
	for _, off := range []int{0, 1024} {
		blk := append([]byte(nil), archive[off:off+512]...)
		sum := 0
		copy(blk[148:156], "        ")
		for _, c := range blk {
			sum += int(c)
		}
		if got, want := string(archive[off+148:off+156]), strconv.FormatInt(int64(sum), 8); got != strings.Repeat("0", 6-len(want))+want+"\x00 " {
			t.Errorf("checksum at %d = %q, sum %s", off, got, want)
		}
	}
}

func TestPaxRecordLength(t *testing.T) {
	for n := range 1100 {
		rec := string(paxRecord(nil, "k", strings.Repeat("v", n)))
		l, _, _ := strings.Cut(rec, " ")
		if l != strconv.Itoa(len(rec)) {
			t.Fatalf("record %q...: length field %s, record is %d bytes", rec[:10], l, len(rec))
		}
	}
}

// A member whose stored size does not fit 11 octal digits carries a pax
// size record; archive/tar must read the header back.
func TestSparseHeadersHugeSize(t *testing.T) {
	const size = 12 << 30
	hdr, spMap, data, err := sparseHeaders("vm3/root.img", size, []region{{0, 9 << 30}}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if data != 9<<30 || !bytes.Contains(hdr, []byte(" size=9663676928\n")) {
		t.Fatalf("data %d, no size record in %q", data, hdr)
	}
	tr := tar.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(spMap)))
	got, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "vm3/root.img" || got.Size != size {
		t.Errorf("read back %q size %d", got.Name, got.Size)
	}
}

// hookWriter calls hook before its first write (the member's headers).
type hookWriter struct {
	io.Writer
	hook func()
}

func (h *hookWriter) Write(p []byte) (int, error) {
	if h.hook != nil {
		h.hook()
		h.hook = nil
	}
	return h.Writer.Write(p)
}

func TestAddVolumeChangedSize(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *os.File) error
	}{
		{"shrank", func(f *os.File) error { return f.Truncate(mib) }},
		{"grew", func(f *os.File) error { _, err := f.WriteAt([]byte("x"), 65*mib); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "img")
			makeSparse(t, path, 64*mib, span{0, 10}, span{32 * mib, 10})
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			w := NewWriter(&hookWriter{Writer: io.Discard, hook: func() {
				if err := tc.change(f); err != nil {
					t.Fatal(err)
				}
			}})
			if _, err := w.AddVolume("vm3/private.img", f); err == nil {
				t.Fatal("AddVolume succeeded on a file that changed size")
			}
			// The stream is broken: the writer must say so from now on.
			if err := w.AddBytes("x", nil, 0o644, time.Now()); err == nil {
				t.Error("AddBytes after a failed AddVolume succeeded")
			}
		})
	}
}

func TestWriterRejectsUnsafeNames(t *testing.T) {
	w := NewWriter(io.Discard)
	for _, name := range []string{"", "/abs", "../x", "a/../b", "a//b", "a/./b", "a/", "a\x00b", "a\nb"} {
		if err := w.AddBytes(name, nil, 0o644, time.Now()); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("AddBytes(%q) = %v, want ErrUnsafeName", name, err)
		}
	}
}

func BenchmarkAddVolume(b *testing.B) {
	path := filepath.Join(b.TempDir(), "img")
	// 64 MiB of data in 1 MiB runs spread over 256 MiB.
	var spans []span
	for i := range 64 {
		spans = append(spans, span{int64(i) * 4 * mib, mib})
	}
	makeSparse(b, path, 256*mib, spans...)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(64 * mib)
	for b.Loop() {
		w := NewWriter(io.Discard)
		if _, err := w.AddVolume("vm3/private.img", f); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// CopySparse reproduces content and holes, and Skip lands at the same
// place as writing the zeros would.
func TestCopySparseAndSkip(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	makeSparse(t, src, 8<<20, span{0, 700}, span{3 << 20, 5000}, span{8<<20 - 3, 3})
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := CopySparse(out, in, 8<<20); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(out.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs")
	}
	var st syscall.Stat_t
	syscall.Stat(out.Name(), &st)
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("copy of an 8 MiB file with 6 KiB of data uses %d bytes", st.Blocks*512)
	}
	// Skips of odd sizes between odd writes.
	f, _ := os.Create(filepath.Join(dir, "skip"))
	defer f.Close()
	w := NewSparseWriter(f)
	var ref bytes.Buffer
	for i, n := range []int{3, 5000, 1, 4096, 12289, 7} {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		w.Write(data)
		ref.Write(data)
		if err := w.Skip(int64(n * 3)); err != nil {
			t.Fatal(err)
		}
		ref.Write(make([]byte, n*3))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, ref.Bytes()) {
		t.Fatal("Skip does not match writing zeros")
	}
}
