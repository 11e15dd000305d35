package sparsetar

import (
	"archive/tar"
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fixChecksum recomputes a tar header block's checksum after an edit.
func fixChecksum(h []byte) {
	copy(h[148:156], "        ")
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// Volumes written by GNU tar itself: the old GNU 'S' format (with more
// regions than its header holds, so extension headers are used) and the
// PAX formats.
func TestExtractFileFromGNUTar(t *testing.T) {
	src := t.TempDir()
	orig := filepath.Join(src, "vm3", "private.img")
	want := makeSparse(t, orig, 16*mib+100, append(manySpans(10), span{16*mib + 50, 50})...)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"gnu S", []string{"--format=gnu"}},
		{"oldgnu S", []string{"--format=oldgnu"}},
		{"pax 1.0", []string{"--format=posix"}},
		{"pax 0.1", []string{"--format=posix", "--sparse-version=0.1"}},
		{"pax 0.0", []string{"--format=posix", "--sparse-version=0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"--sparse"}, tc.args...), "-cf", "-", "vm3/private.img")
			archive := gnuTar(t, src, nil, args...)
			got := filepath.Join(t.TempDir(), "restored.img")
			f, err := os.Create(got)
			must(t, err)
			defer f.Close()
			sw := NewSparseWriter(f)
			n, err := ExtractFile(bytes.NewReader(archive), "vm3/private.img", sw, math.MaxInt64)
			if err != nil || n != int64(len(want)) {
				t.Fatalf("ExtractFile = %d, %v", n, err)
			}
			must(t, sw.Close())
			assertFile(t, got, want)
			checkSparse(t, "restored", orig, got, true)
		})
	}
}

func TestExtractFileHostile(t *testing.T) {
	const want = "vm3/private.img"
	// A 1 TiB sparse member with one block of data.
	hdr, spMap, _, err := sparseHeaders(want, 1<<40, []region{{0, 512}}, time.Unix(0, 0))
	must(t, err)
	sparseBomb := append(append(hdr, spMap...), make([]byte, 512+1024)...) // data, end marker
	valid := tarOf(t, reg(want, "content"))

	for _, tc := range []struct {
		name    string
		archive []byte
		max     int64
		err     error
	}{
		{"wrong name", tarOf(t, reg("vm3/root.img", "x")), 100, ErrUnexpectedMember},
		{"two members", tarOf(t, reg(want, "x"), reg("vm3/other", "y")), 100, ErrUnexpectedMember},
		{"same member twice", tarOf(t, reg(want, "x"), reg(want, "y")), 100, ErrUnexpectedMember},
		{"dotdot", tarOf(t, reg("../x", "x")), 100, ErrUnsafeName},
		{"dotdot inside", tarOf(t, reg("vm3/../vm3/private.img", "x")), 100, ErrUnsafeName},
		{"absolute", tarOf(t, reg("/"+want, "x")), 100, ErrUnsafeName},
		{"control character", tarOf(t, reg("vm3/\x1bprivate.img", "x")), 100, ErrUnsafeName},
		{"directory", tarOf(t, dir(want+"/")), 100, ErrUnexpectedMember},
		{"symlink", tarOf(t, symlink(want, "/etc/shadow")), 100, ErrUnexpectedMember},
		{"hard link", tarOf(t, hardlink(want, "/etc/shadow")), 100, ErrUnexpectedMember},
		{"too large", valid, 6, ErrTooLarge},
		{"sparse bomb", sparseBomb, 1 << 30, ErrTooLarge},
		{"no member", tarOf(t), 100, ErrUnexpectedMember},
		{"empty stream", nil, 100, io.ErrUnexpectedEOF},
		{"data after end marker", append(valid, append([]byte("hidden"), make([]byte, 506)...)...), 100, ErrUnexpectedMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dst bytes.Buffer
			_, err := ExtractFile(bytes.NewReader(tc.archive), want, &dst, tc.max)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.err == ErrTooLarge && dst.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing", dst.Len())
			}
		})
	}
	t.Run("gnu record padding accepted", func(t *testing.T) {
		padded := append(valid, make([]byte, 10240-len(valid)%10240)...)
		if _, err := ExtractFile(bytes.NewReader(padded), want, io.Discard, 100); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("endless zero padding refused", func(t *testing.T) {
		padded := append(valid, make([]byte, 2<<20)...)
		if _, err := ExtractFile(bytes.NewReader(padded), want, io.Discard, 100); !errors.Is(err, ErrUnexpectedMember) {
			t.Fatalf("2 MiB of zeros after the end: %v", err)
		}
	})
	t.Run("exact limit accepted", func(t *testing.T) {
		if n, err := ExtractFile(bytes.NewReader(valid), want, io.Discard, 7); n != 7 || err != nil {
			t.Fatalf("= %d, %v", n, err)
		}
	})
}

// qubes.xml may be followed by one companion: a regular file with a plain
// name, within its own size limit; nothing else and nothing more.
func TestExtractFileWithCompanion(t *testing.T) {
	const want = "qubes.xml"
	for _, tc := range []struct {
		name               string
		archive            []byte
		companion, content string
		err                error
	}{
		{"none", tarOf(t, reg(want, "<x/>")), "", "", nil},
		{"one", tarOf(t, reg(want, "<x/>"), reg("pedos-chain", "map")), "pedos-chain", "map", nil},
		{"empty companion", tarOf(t, reg(want, "<x/>"), reg("pedos-chain", "")), "pedos-chain", "", nil},
		{"two", tarOf(t, reg(want, "<x/>"), reg("a", "1"), reg("b", "2")), "", "", ErrUnexpectedMember},
		{"want twice", tarOf(t, reg(want, "<x/>"), reg(want, "<y/>")), "", "", ErrUnexpectedMember},
		{"in a directory", tarOf(t, reg(want, "<x/>"), reg("vm1/private.img", "x")), "", "", ErrUnexpectedMember},
		{"unsafe name", tarOf(t, reg(want, "<x/>"), reg("../x", "x")), "", "", ErrUnsafeName},
		{"symlink", tarOf(t, reg(want, "<x/>"), symlink("pedos-chain", "/etc/shadow")), "", "", ErrUnexpectedMember},
		{"directory", tarOf(t, reg(want, "<x/>"), dir("pedos-chain/")), "", "", ErrUnexpectedMember},
		{"too large", tarOf(t, reg(want, "<x/>"), reg("pedos-chain", "0123456789")), "", "", ErrTooLarge},
		{"companion first", tarOf(t, reg("pedos-chain", "map"), reg(want, "<x/>")), "", "", ErrUnexpectedMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dst bytes.Buffer
			n, name, content, err := ExtractFileWithCompanion(bytes.NewReader(tc.archive), want, &dst, 100, 9)
			if !errors.Is(err, tc.err) || (err == nil && tc.err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if name != "" || content != nil {
					t.Errorf("refused, yet returned companion %q (%q)", name, content)
				}
				return
			}
			if name != tc.companion || string(content) != tc.content {
				t.Errorf("companion %q (%q), want %q (%q)", name, content, tc.companion, tc.content)
			}
			if n != 4 || dst.String() != "<x/>" {
				t.Errorf("qubes.xml = %d, %q", n, dst.String())
			}
		})
	}
}

// Every truncation of a valid stream must fail, with io.ErrUnexpectedEOF.
func TestExtractFileTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	makeSparse(t, path, 256<<10, span{0, 700}, span{128 << 10, 4096}, span{256<<10 - 1, 1})
	volume, _ := volumeArchive(t, "vm3/private.img", path)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	must(t, w.AddBytes("qubes.xml", bytes.Repeat([]byte("<x/>"), 300), 0o644, time.Now()))
	must(t, w.Close())
	for _, tc := range []struct {
		name, member string
		archive      []byte
	}{
		{"volume", "vm3/private.img", volume},
		{"regular", "qubes.xml", buf.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for cut := range len(tc.archive) {
				_, err := ExtractFile(bytes.NewReader(tc.archive[:cut]), tc.member, io.Discard, math.MaxInt64)
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("cut at %d of %d: err = %v, want io.ErrUnexpectedEOF", cut, len(tc.archive), err)
				}
			}
			if _, err := ExtractFile(bytes.NewReader(tc.archive), tc.member, io.Discard, math.MaxInt64); err != nil {
				t.Fatalf("whole stream: %v", err)
			}
		})
	}
}

func TestSparseWriter(t *testing.T) {
	// Leading hole, data, zero blocks inside, a zero run that is not
	// block aligned, data ending mid-block, then a trailing hole.
	want := make([]byte, 1*mib+777)
	copy(want[100<<10:], bytes.Repeat([]byte("data"), 5000))
	copy(want[600<<10+3:], "x")
	want[1*mib-1] = 1
	for _, chunk := range []int{1, 511, 4096, 4097, 65536, len(want)} {
		t.Run("", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(path)
			must(t, err)
			defer f.Close()
			sw := NewSparseWriter(f)
			step := chunk
			if chunk == 1 {
				step = 1 // byte by byte only through the first 64 KiB of hole
			}
			for off := 0; off < len(want); off += step {
				if off >= 64<<10 && chunk == 1 {
					step = 4099
				}
				end := min(off+step, len(want))
				if n, err := sw.Write(want[off:end]); n != end-off || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			must(t, sw.Close())
			assertFile(t, path, want)
			// Data spans 100 KiB..120 KiB, one block at 600 KiB and one at the end.
			if a := allocated(t, path); a > 40<<10 {
				t.Errorf("chunk %d: allocates %d bytes", chunk, a)
			}
		})
	}
	t.Run("refuses a non-empty file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		must(t, os.WriteFile(path, []byte("old"), 0o644))
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		must(t, err)
		defer f.Close()
		if _, err := NewSparseWriter(f).Write([]byte("new")); err == nil {
			t.Error("Write into a non-empty file succeeded")
		}
	})
}

// A member named by the tar reader but holding something else entirely
// must not reach dst: check the name is GNU.sparse.name, not the ustar one.
func TestExtractFileUsesSparseName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img")
	makeSparse(t, path, 8192, span{0, 10})
	archive, _ := volumeArchive(t, "vm3/private.img", path)
	if _, err := ExtractFile(bytes.NewReader(archive), "vm3/GNUSparseFile.0/private.img", io.Discard, 1<<20); !errors.Is(err, ErrUnexpectedMember) {
		t.Errorf("placeholder name accepted: %v", err)
	}
	tr := tar.NewReader(bytes.NewReader(archive))
	if hdr, err := tr.Next(); err != nil || hdr.Name != "vm3/private.img" {
		t.Errorf("Next = %v, %v", hdr, err)
	}
}

// For PAX 1.0 members, from AddVolume and from GNU tar, and for old GNU
// sparse members (GNU tar's default, so the older writers'), the layout
// (map, data) is recovered from the header bytes, so that ExtractFile
// skips the holes and bounds the member by its data; a member of another
// kind, or bytes that do not add up, decline.
func TestSparseLayout(t *testing.T) {
	layout := func(archive []byte) (sparseLayout, bool) {
		er := &endReader{r: bytes.NewReader(archive)}
		er.startCapture()
		hdr, err := next(tar.NewReader(er), er)
		must(t, err)
		return layoutOf(hdr, er.stopCapture())
	}
	src := t.TempDir()
	orig := filepath.Join(src, "vm3", "private.img")
	size := int64(16 << 30) // 16 GiB, nearly all holes: GNU tar's sizes take base-256
	spans := []span{{0, 700}, {1 << 20, 5000}, {10 << 30, 4096}, {size - 1, 1}}
	for i := range int64(30) { // more regions than an old GNU header holds
		spans = append(spans, span{(2 << 30) + i<<20, 512})
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.off, b.off) })
	makeSparseFile(t, orig, size, spans...)
	ours, _ := volumeArchive(t, "vm3/private.img", orig)
	gnu := gnuTar(t, src, nil, "--sparse", "--format=posix", "-cf", "-", "vm3/private.img")
	oldGNU := gnuTar(t, src, nil, "--sparse", "--format=gnu", "-cf", "-", "vm3/private.img")
	var data int64
	for _, r := range dataRegionsOf(t, orig) {
		data += r.len
	}
	for name, archive := range map[string][]byte{"AddVolume": ours, "GNU tar": gnu, "old GNU tar": oldGNU} {
		t.Run(name, func(t *testing.T) {
			l, ok := layout(archive)
			if !ok {
				t.Fatal("no sparse layout recovered")
			}
			if l.data() > data+int64(len(spans))*blockSize {
				t.Errorf("layout carries %d bytes, the file has %d", l.data(), data)
			}
			// Bounded by its data: a limit far below its length passes,
			// one byte less than its data does not.
			if _, err := ExtractFile(bytes.NewReader(archive), "vm3/private.img", io.Discard, l.data()-1); !errors.Is(err, ErrTooLarge) {
				t.Errorf("limit below its data: %v, want ErrTooLarge", err)
			}
			var got []region
			for _, r := range l.regions {
				if r.len > 0 {
					got = append(got, r)
				}
			}
			if name == "AddVolume" && fmt.Sprint(got) != fmt.Sprint(dataRegionsOf(t, orig)) {
				t.Errorf("regions %v, want %v", got, dataRegionsOf(t, orig))
			}
			out := filepath.Join(t.TempDir(), "out.img")
			f, err := os.Create(out)
			must(t, err)
			sw := NewSparseWriter(f)
			n, err := ExtractFile(bytes.NewReader(archive), "vm3/private.img", sw, l.data())
			must(t, err)
			must(t, sw.Close())
			f.Close()
			if n != size {
				t.Fatalf("ExtractFile = %d", n)
			}
			checkSparse(t, "restored", orig, out, true)
			sameData(t, orig, out)
			n, err = ExtractFile(bytes.NewReader(archive), "vm3/private.img", io.Discard, math.MaxInt64)
			if err != nil || n != size {
				t.Fatalf("into io.Discard: %d, %v", n, err)
			}
		})
	}
	// A plain member and a PAX 0.1 sparse one decline: archive/tar fills
	// their holes, so their length counts against the limit.
	makeSparseFile(t, filepath.Join(src, "small"), 64<<10, span{0, 10}, span{40000, 10})
	for _, args := range [][]string{{"--format=posix", "--sparse", "--sparse-version=0.1"}, {"--format=posix"}} {
		archive := gnuTar(t, src, nil, append(args, "-cf", "-", "small")...)
		if _, ok := layout(archive); ok {
			t.Errorf("%v: a layout for a member that is not PAX 1.0 or old GNU sparse", args)
		}
		if _, err := ExtractFile(bytes.NewReader(archive), "small", io.Discard, 64<<10-1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v: limit below its length: %v, want ErrTooLarge", args, err)
		}
	}
	// An old GNU map whose data does not fill the member declines.
	badGNU := bytes.Clone(oldGNU)
	badGNU[386+12+10]++ // the first region's length, an octal digit
	fixChecksum(badGNU[:blockSize])
	if _, ok := layout(badGNU); ok {
		t.Error("a layout for an inconsistent old GNU map")
	}
	// A map whose data does not fill the member declines (archive/tar then
	// reports the inconsistency).
	bad := bytes.Clone(ours)
	i := bytes.Index(bad, []byte("\n8192\n")) // the region holding the 5000 bytes at 1 MiB
	copy(bad[i:], "\n8191\n")
	if _, ok := layout(bad); ok {
		t.Error("a layout for an inconsistent map")
	}
	if _, err := ExtractFile(bytes.NewReader(bad), "vm3/private.img", io.Discard, math.MaxInt64); err == nil {
		t.Error("an inconsistent map was read")
	}
}

// makeSparseFile is makeSparse for files too big to hold in memory: the
// data is random, the expected content is the file itself.
func makeSparseFile(t *testing.T, path string, size int64, spans ...span) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	must(t, f.Truncate(size))
	rng := rand.New(rand.NewPCG(uint64(size), 9))
	for _, s := range spans {
		b := make([]byte, s.n)
		for i := range b {
			b[i] = byte(rng.IntN(255) + 1)
		}
		_, err := f.WriteAt(b, s.off)
		must(t, err)
	}
}

// dataRegionsOf lists a file's data regions as the kernel reports them.
func dataRegionsOf(t *testing.T, path string) []region {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	fi, err := f.Stat()
	must(t, err)
	rs, err := dataRegions(f, fi.Size())
	must(t, err)
	return rs
}

// sameData compares two files of the same size where either holds data.
func sameData(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Open(a)
	must(t, err)
	defer fa.Close()
	fb, err := os.Open(b)
	must(t, err)
	defer fb.Close()
	ia, _ := fa.Stat()
	ib, _ := fb.Stat()
	if ia.Size() != ib.Size() {
		t.Fatalf("%s is %d bytes, %s %d", a, ia.Size(), b, ib.Size())
	}
	for _, r := range append(dataRegionsOf(t, a), dataRegionsOf(t, b)...) {
		x, y := make([]byte, r.len), make([]byte, r.len)
		fa.ReadAt(x, r.off)
		fb.ReadAt(y, r.off)
		if !bytes.Equal(x, y) {
			t.Fatalf("%s and %s differ in %d+%d", a, b, r.off, r.len)
		}
	}
}

// Members whose stored size is given in unusual ways (a size record in an
// earlier extended header, or twice in one) take archive/tar's path, and
// so are refused as it refuses them.
func TestPAX1LayoutUnusualSizes(t *testing.T) {
	paxBlock := func(records []byte) []byte {
		h, err := ustarHeader("PaxHeaders/x", 'x', int64(len(records)), time.Unix(1, 0))
		must(t, err)
		return append(append(h, records...), make([]byte, padding(int64(len(records))))...)
	}
	member := func(extra []byte, sizeRecords []string, stored int64) []byte {
		var rec []byte
		for _, v := range sizeRecords {
			rec = paxRecord(rec, "size", v)
		}
		rec = paxRecord(rec, "GNU.sparse.major", "1")
		rec = paxRecord(rec, "GNU.sparse.minor", "0")
		rec = paxRecord(rec, "GNU.sparse.name", "p/v")
		rec = paxRecord(rec, "GNU.sparse.realsize", "4096")
		// The map (one block) and 512 data bytes make 1024 stored bytes;
		// 1024 more follow, which a stored size of 2048 would include.
		spMap := []byte("1\n0\n512\n")
		spMap = append(spMap, make([]byte, padding(int64(len(spMap))))...)
		shdr, err := ustarHeader("GNUSparseFile.0/v", '0', stored, time.Unix(1, 0))
		must(t, err)
		out := append(append(extra, paxBlock(rec)...), shdr...)
		out = append(out, spMap...)
		out = append(out, bytes.Repeat([]byte{'d'}, 512)...)
		return append(out, make([]byte, 1024+1024)...) // the 1024 more, then the end marker
	}
	for name, archive := range map[string][]byte{
		"size in an earlier header": member(paxBlock(paxRecord(nil, "size", "1024")), nil, 2048),
		"size twice":                member(nil, []string{"1024", "2048"}, 0),
	} {
		t.Run(name, func(t *testing.T) {
			h := sha256.New()
			_, errTar := ExtractFile(bytes.NewReader(archive), "p/v", h, math.MaxInt64)
			_, errFast := ExtractFile(bytes.NewReader(archive), "p/v", io.Discard, math.MaxInt64)
			if (errTar == nil) != (errFast == nil) {
				t.Fatalf("archive/tar's path: %v; the hole-skipping one: %v", errTar, errFast)
			}
		})
	}
}
