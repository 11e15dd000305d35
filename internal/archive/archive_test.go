package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/testutil"
)

func TestRoundTrip(t *testing.T) {
	fx := newFixture(t)
	want := fx.expected(t)
	for _, comp := range []string{"gzip", "none", "zstd", "bzip2", "xz"} {
		t.Run(comp, func(t *testing.T) {
			if comp == "bzip2" || comp == "xz" {
				testutil.RequireTool(t, comp) // written by the system program
			}
			opts := testWriterOptions()
			opts.Compression = comp
			data := fx.archive(t, opts)
			got, err := readArchive(t, bytes.NewReader(data), testReaderOptions())
			if err != nil {
				t.Fatal(err)
			}
			compareDigests(t, got, want)
		})
	}
}

func TestHeaderOfWrittenArchive(t *testing.T) {
	fx := newFixture(t)
	opts := testWriterOptions()
	opts.BackupID = "20260101T120000-4242"
	r, err := NewReader(bytes.NewReader(fx.archive(t, opts)), testReaderOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := "version=4\nencrypted=True\ncompressed=True\ncompression-filter=gzip\nhmac-algorithm=scrypt\nbackup-id=20260101T120000-4242\npedos-manifest=1\n"
	if got := string(r.Header().Marshal()); got != want {
		t.Fatalf("header\n%s\nwant\n%s", got, want)
	}
	if string(r.QubesXML()) != fixtureXML {
		t.Fatalf("qubes.xml %q", r.QubesXML())
	}
}

// An increment's header names its base, and its manifest is at version 2:
// the reader takes it as such, and a reader that knows version 1 only
// refuses it (checked here by a header that hides the base, as an older
// reader would not see it).
func TestIncrementHeader(t *testing.T) {
	fx := newFixture(t)
	opts := testWriterOptions()
	opts.BackupID, opts.Base = "20260102T120000-4343", "20260101T120000-4242"
	data := fx.archive(t, opts)
	got, err := readArchive(t, bytes.NewReader(data), testReaderOptions())
	if err != nil {
		t.Fatal(err)
	}
	compareDigests(t, got, fx.expected(t))
	r, err := NewReader(bytes.NewReader(data), testReaderOptions())
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Header(); h.Base != opts.Base || !strings.HasSuffix(string(h.Marshal()), "pedos-manifest=1\npedos-base="+opts.Base+"\n") {
		t.Errorf("header %+v", h)
	}
	r.Close()

	var m Manifest
	if err := json.Unmarshal(manifestOf(t, data), &m); err != nil || m.Version != 2 {
		t.Fatalf("an increment's manifest: version %d, %v", m.Version, err)
	}
	if _, err := parseManifest(manifestOf(t, data), Header{BackupID: opts.BackupID}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("a version 2 manifest read as a full backup's: %v", err)
	}
	opts.Base = "-bad"
	if _, err := NewWriter(io.Discard, opts); err == nil {
		t.Error("a base id starting with '-' was taken")
	}
}

// Members appear in the order of format.md §1.3, each file's chunks
// contiguous and numbered from 000, the manifest last, and each member
// archive padded to the 10240-byte tar record.
func TestMemberLayout(t *testing.T) {
	fx := newFixture(t)
	data := fx.archive(t, testWriterOptions())
	if len(data)%recordSize != 0 {
		t.Fatalf("archive size %d is not a multiple of %d", len(data), recordSize)
	}
	names := listMembers(t, data)
	if names[0] != HeaderName || names[1] != HeaderHMACName || names[2] != "qubes.xml.000.enc" {
		t.Fatalf("first members %v", names[:3])
	}
	if tail := strings.Join(names[len(names)-2:], " "); tail != ManifestName+" "+ManifestHMACName {
		t.Fatalf("last members %s", tail)
	}
	var files []string
	for _, n := range names[2 : len(names)-2] {
		file, index, err := parseChunkMember(n)
		if err != nil {
			t.Fatal(err)
		}
		if index == 0 {
			files = append(files, file)
		} else if files[len(files)-1] != file {
			t.Fatalf("%s is not contiguous with its file", n)
		}
	}
	if got, want := strings.Join(files, " "), "qubes.xml "+strings.Join(fx.files, " "); got != want {
		t.Fatalf("file order %q, want %q", got, want)
	}
	if !contains(names, "vm1/private.img.002.enc") {
		t.Fatalf("the volume should span several %d-byte chunks: %v", testChunk, names)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func listMembers(t testing.TB, data []byte) []string {
	t.Helper()
	o := NewOuterReader(bytes.NewReader(data))
	var names []string
	for {
		name, _, err := o.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
}

// A compressed stream of an exact multiple of the chunk size ends with an
// empty chunk, as with the reference writer, so a full last chunk always
// means chunks are missing.
func TestExactMultipleEndsWithEmptyChunk(t *testing.T) {
	opts := testWriterOptions()
	opts.Compression = "none"
	opts.ChunkSize = 4096
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.AddBytes(QubesXMLName, []byte("<qubes/>"))
	payload := bytes.Repeat([]byte("x"), 3*4096)
	if err := w.AddFile("vm1/raw", func(out io.Writer) error { _, err := out.Write(payload); return err }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names := listMembers(t, buf.Bytes())
	if !contains(names, "vm1/raw.003.enc") || contains(names, "vm1/raw.004.enc") {
		t.Fatalf("members %v", names)
	}
	ropts := testReaderOptions()
	r, err := NewReader(bytes.NewReader(buf.Bytes()), ropts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// Select reads past unselected files without deriving their keys, yet
// still checks the whole archive against the manifest.
func TestSelect(t *testing.T) {
	fx := newFixture(t)
	data := fx.archive(t, testWriterOptions())
	opts := testReaderOptions()
	opts.Select = func(name string) bool { return name == "vm1/firewall.xml" }
	got, err := readArchive(t, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["vm1/firewall.xml"] != fx.expected(t)["vm1/firewall.xml"] {
		t.Fatalf("got %v", got)
	}
	// With a wrong trailer in an unselected chunk, the manifest check fails.
	bad := bytes.Clone(data)
	off := memberOffset(t, bad, "vm1/private.img.001.enc")
	size := memberSize(t, bad, "vm1/private.img.001.enc")
	bad[off+size-1] ^= 1
	if _, err := readArchive(t, bytes.NewReader(bad), opts); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unselected damaged chunk: %v", err)
	}
}

func TestWriterRejects(t *testing.T) {
	base := testWriterOptions()
	cases := []struct {
		name string
		edit func(*WriterOptions)
		want string
	}{
		{"empty passphrase", func(o *WriterOptions) { o.Passphrase = nil }, "empty"},
		{"control character", func(o *WriterOptions) { o.Passphrase = []byte("a\tb") }, "control character"},
		{"newline", func(o *WriterOptions) { o.Passphrase = []byte("a\nb") }, "control character"},
		{"bad params", func(o *WriterOptions) { o.Params.LogN = 5 }, "out of range"},
		{"missing filter program", func(o *WriterOptions) { o.Compression = "no-such-filter-program" }, "no-such-filter-program"},
		{"bad filter name", func(o *WriterOptions) { o.Compression = "gzip -9" }, "gzip -9"},
		{"bad backup id", func(o *WriterOptions) { o.BackupID = "-x" }, "backup id"},
		{"long backup id", func(o *WriterOptions) { o.BackupID = strings.Repeat("a", 5000) }, "backup id"},
	}
	for _, c := range cases {
		opts := base
		c.edit(&opts)
		var buf bytes.Buffer
		_, err := NewWriter(&buf, opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the error", c.name, buf.Len())
		}
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, base)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.AddBytes("vm1/x", nil); !errors.Is(err, ErrUnexpectedMember) {
		t.Errorf("a file before qubes.xml: %v", err)
	}
	for _, name := range []string{"../x", "/abs", "a//b", "vm1/./x", "pedos-manifest", "bad\x01name", "vm1/" + strings.Repeat("a", 150)} {
		if err := w.AddBytes(name, nil); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	w.AddBytes(QubesXMLName, nil)
	if err := w.AddBytes(QubesXMLName, nil); !errors.Is(err, ErrUnexpectedMember) {
		t.Errorf("duplicate file: %v", err)
	}
}

// A failing destination surfaces as an error from the writer, never as a
// silent success.
func TestWriterDestinationFailure(t *testing.T) {
	fx := newFixture(t)
	for _, limit := range []int{100, 30000, 200000} {
		out := &failingWriter{limit: limit}
		_, err := fx.write(t, out, testWriterOptions())
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("limit %d: got %v", limit, err)
		}
	}
}

type failingWriter struct{ n, limit int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, errors.New("disk full")
	}
	f.n += len(p)
	return len(p), nil
}

// The writer's memory stays bounded when the destination is slower than
// the data: at most Workers+2 chunk buffers exist, whatever the file size.
func TestWriterMemoryBounded(t *testing.T) {
	const chunk = 1 << 20
	opts := testWriterOptions()
	opts.Compression = "none"
	opts.Workers = 2
	opts.ChunkSize = chunk
	w, err := NewWriter(&slowWriter{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	w.AddBytes(QubesXMLName, nil)
	runtime.GC()
	var base, now runtime.MemStats
	runtime.ReadMemStats(&base)
	peak := uint64(0)
	err = w.AddFile("vm1/big", func(out io.Writer) error {
		block := randomData(chunk/4, 5)
		for i := 0; i < 4*48; i++ {
			if _, err := out.Write(block); err != nil {
				return err
			}
			if i%8 == 0 {
				runtime.ReadMemStats(&now)
				peak = max(peak, now.HeapInuse)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Four chunk buffers, two 1 MiB scrypt workspaces, the block and slack;
	// an unbounded queue would hold most of the 48 MiB.
	if grown := int64(peak) - int64(base.HeapInuse); grown > 16*chunk {
		t.Fatalf("heap grew by %d MiB while writing 48 MiB to a slow destination", grown>>20)
	}
}

// slowWriter makes the destination the bottleneck.
type slowWriter struct{}

func (slowWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return len(p), nil
}

func TestAbortStopsWriter(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	w.AddBytes(QubesXMLName, []byte(fixtureXML))
	w.Abort(errors.New("cancelled by user"))
	if err := w.AddBytes("vm1/x", nil); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("after abort: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after Abort succeeded")
	}
}

// The shared key-derivation budget never deadlocks, even when one chunk's
// derivation needs the whole budget, and the per-chunk limits still apply.
func TestReaderKDFBudget(t *testing.T) {
	fx := newFixture(t)
	data := fx.archive(t, testWriterOptions())
	opts := testReaderOptions()
	opts.Limits = scryptenc.Limits{MaxMemory: testParams.Memory(), MaxWork: testParams.Work()}
	got, err := readArchive(t, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareDigests(t, got, fx.expected(t))
	opts.Limits.MaxMemory--
	if _, err := readArchive(t, bytes.NewReader(data), opts); !errors.Is(err, scryptenc.ErrTooExpensive) {
		t.Fatalf("below the chunks' cost: %v", err)
	}
	opts.Limits.Force = true
	if _, err := readArchive(t, bytes.NewReader(data), opts); err != nil {
		t.Fatalf("forced: %v", err)
	}
}

// Skipping the rest of a partly read file (Next before its end) leaves the
// reader consistent: the parallel decompressor has stopped reading the
// chunks before they are skipped (run with -race).
func TestNextAfterPartialRead(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	w.AddBytes(QubesXMLName, []byte(fixtureXML))
	big := randomData(6<<20, 11) // six gzip members, many chunks
	for _, name := range []string{"vm1/a", "vm1/b"} {
		if err := w.AddFile(name, func(out io.Writer) error { _, err := out.Write(big); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r, err := NewReader(bytes.NewReader(buf.Bytes()), testReaderOptions())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, f.Name)
			if _, err := io.ReadFull(f, make([]byte, 1000)); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
		}
		r.Close()
		if strings.Join(names, " ") != "vm1/a vm1/b" {
			t.Fatalf("files %v", names)
		}
	}
}

// A pax size record so large that rounding it to whole blocks would wrap
// negative is refused, not turned into a negative skip.
func TestOuterReaderHugePaxSize(t *testing.T) {
	for _, c := range []struct {
		size string
		ok   bool
	}{{"9223372036854775807", false}, {"4611686018427387905", false}, {"4611686018427387904", true}} {
		var rec string
		for n := 1; ; n++ { // a pax record's length counts its own digits
			r := fmt.Sprintf("%d size=%s\n", n, c.size)
			if len(r) == n {
				rec = r
				break
			}
		}
		x, err := memberHeader("PaxHeaders/m", int64(len(rec)), testTime)
		if err != nil {
			t.Fatal(err)
		}
		x[156] = 'x'
		clear(x[148:156])
		sum, _ := checksum(x)
		copy(x[148:156], fmt.Sprintf("%06o\x00 ", sum))
		var data bytes.Buffer
		data.Write(x)
		data.Write(append([]byte(rec), make([]byte, blockSize-len(rec))...))
		h, _ := memberHeader("vm1/private.img.000.enc", 0, testTime)
		data.Write(h)
		_, size, err := NewOuterReader(bytes.NewReader(data.Bytes())).Next()
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("pax size %s: size %d, %v", c.size, size, err)
		}
	}
}

// The keys of the header and qubes.xml start alone, at once (each may
// have a core to itself), and a file announced with more than a chunk of
// data gets its first two keys as a pair: a file of four chunks costs two
// paired derivations.
func TestWriterPairsExpectedKeys(t *testing.T) {
	if scryptenc.Lanes < 2 {
		t.Skip("this CPU derives one key per core at a time (no AVX2)")
	}
	big := randomData(testChunk*7/2, 9)
	files := map[string][]byte{QubesXMLName: []byte(fixtureXML), "vm1/big": big}
	w, data := writeExpected(t, files, ExpectedFile{QubesXMLName, 20}, ExpectedFile{"vm1/big", int64(len(big))})
	if a, p := w.derivations.alone.Load(), w.derivations.paired.Load(); a != 2 || p != 2 {
		t.Errorf("header, qubes.xml and a file of four chunks: %d derivations alone and %d pairs, want 2 and 2", a, p)
	}
	checkFiles(t, data, files)
}

// A file announced big that stays within one chunk (here: nothing at all)
// leaves no key ahead that would hold up the next files'.
func TestWriterDropsUnneededKeys(t *testing.T) {
	files := map[string][]byte{QubesXMLName: []byte(fixtureXML), "vm1/zeros": nil, "vm2/small": []byte("small")}
	w, data := writeExpected(t, files, ExpectedFile{QubesXMLName, 20}, ExpectedFile{"vm1/zeros", 4 * testChunk}, ExpectedFile{"vm2/small", 5})
	if len(w.ahead) != 0 {
		t.Errorf("keys left ahead after Close: %v", slices.Collect(maps.Keys(w.ahead)))
	}
	checkFiles(t, data, files)
}

// Announcing again replaces what was announced: a key derived ahead for
// a file still announced is kept, one for a file no longer announced is
// dropped.
func TestWriterExpectAgain(t *testing.T) {
	w, buf := plainWriter(t)
	aheadFor := func(file string) *keyFuture {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.ahead[ChunkName(file, 0)]
	}
	w.Expect(ExpectedFile{Name: "vm1/guess"})
	w.Expect(ExpectedFile{Name: "vm2/small"})
	guessed, small := aheadFor("vm1/guess"), aheadFor("vm2/small")
	if guessed != nil || small == nil {
		t.Fatalf("after announcing vm1/guess, then vm2/small: keys ahead for them: %v, %v", guessed != nil, small != nil)
	}
	files := map[string][]byte{QubesXMLName: []byte(fixtureXML), "vm2/small": []byte("small")}
	w.Expect(ExpectedFile{QubesXMLName, 20}, ExpectedFile{"vm2/small", 5})
	if aheadFor("vm2/small") != small {
		t.Error("announcing vm2/small again derived its key again")
	}
	addAndClose(t, w, files, QubesXMLName, "vm2/small")
	// The header's, qubes.xml's, and one each for the two announced files.
	if n := w.derivations.alone.Load(); n != 4 {
		t.Errorf("%d keys derived, want 4", n)
	}
	checkFiles(t, buf.Bytes(), files)
}

// writeExpected writes files, announced as expected, in that order,
// uncompressed in chunks of testChunk.
func writeExpected(t *testing.T, files map[string][]byte, expected ...ExpectedFile) (*Writer, []byte) {
	t.Helper()
	w, buf := plainWriter(t)
	w.Expect(expected...)
	var names []string
	for _, f := range expected {
		names = append(names, f.Name)
	}
	addAndClose(t, w, files, names...)
	return w, buf.Bytes()
}

// plainWriter is a writer of an uncompressed archive, in chunks of
// testChunk, into the buffer it returns.
func plainWriter(t *testing.T) (*Writer, *bytes.Buffer) {
	t.Helper()
	opts := testWriterOptions()
	opts.Compression = "none"
	buf := &bytes.Buffer{}
	w, err := NewWriter(buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, buf
}

// addAndClose adds the named files, in that order, and closes w.
func addAndClose(t *testing.T, w *Writer, files map[string][]byte, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := w.AddBytes(name, files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkFiles(t *testing.T, data []byte, files map[string][]byte) {
	t.Helper()
	got, err := readArchive(t, bytes.NewReader(data), testReaderOptions())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for name, content := range files {
		want[name] = digest(content)
	}
	compareDigests(t, got, want)
}

// manifestOf returns the manifest member of an archive.
func manifestOf(t testing.TB, data []byte) []byte {
	t.Helper()
	o := NewOuterReader(bytes.NewReader(data))
	for {
		name, _, err := o.Next()
		if err != nil {
			t.Fatalf("no manifest: %v", err)
		}
		if name == ManifestName {
			b, err := io.ReadAll(o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// A companion is stored in qubes.xml's member and read back with it,
// compressed or not; one that may not fit the member's 1 MiB, or that
// could be mistaken for qubes.xml or a path, is refused before anything
// is written.
func TestQubesXMLCompanion(t *testing.T) {
	for _, comp := range []string{"gzip", "none"} {
		opts := testWriterOptions()
		opts.Compression = comp
		var out bytes.Buffer
		w, err := NewWriter(&out, opts)
		if err != nil {
			t.Fatal(err)
		}
		xml := []byte(fixtureXML)
		c := Companion{Name: "pedos-chain", Data: bytes.Repeat([]byte("data 0 65536\n"), 1000)}
		if !w.CompanionFits(xml, c) {
			t.Fatalf("%s: %d bytes do not fit", comp, len(c.Data))
		}
		huge := Companion{Name: "pedos-chain", Data: make([]byte, maxQubesXMLChunk)}
		if w.CompanionFits(xml, huge) {
			t.Errorf("%s: a 1 MiB companion fits", comp)
		}
		for _, bad := range []Companion{huge, {Name: QubesXMLName}, {Name: "vm1/notes"}} {
			if err := w.AddQubesXML(xml, bad); err == nil {
				t.Errorf("%s: companion %q of %d bytes taken", comp, bad.Name, len(bad.Data))
			}
		}
		if err := w.AddQubesXML(xml, c); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if names := listMembers(t, out.Bytes()); len(names) != 5 || names[2] != "qubes.xml.000.enc" {
			t.Errorf("%s: members %q", comp, names)
		}
		r, err := NewReader(bytes.NewReader(out.Bytes()), testReaderOptions())
		if err != nil {
			t.Fatal(err)
		}
		got := r.Companion()
		if string(r.QubesXML()) != fixtureXML || got == nil || got.Name != c.Name || !bytes.Equal(got.Data, c.Data) {
			t.Errorf("%s: read back qubes.xml %d bytes, companion %+v", comp, len(r.QubesXML()), got)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("%s: after qubes.xml: %v", comp, err)
		}
		r.Close()
	}
}

// Select may wait for its caller: a restore chooses an archive's files
// only once it has read what comes before them (qubes.xml, or a file of
// another archive). The file before the one Select is asked about still
// reads to its end meanwhile.
func TestSelectMayWait(t *testing.T) {
	fx := newFixture(t)
	data := fx.archive(t, testWriterOptions())
	names := listMembers(t, data)
	first := strings.TrimSuffix(names[3], ".000.enc") // after the header, its .hmac and qubes.xml
	firstRead := make(chan struct{})
	opts := testReaderOptions()
	opts.Select = func(name string) bool {
		if name != first {
			<-firstRead
		}
		return true
	}
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			r, err := NewReader(bytes.NewReader(data), opts)
			if err != nil {
				return err
			}
			defer r.Close()
			f, err := r.Next()
			if err != nil {
				return err
			}
			if f.Name != first {
				return fmt.Errorf("first file %s, want %s", f.Name, first)
			}
			if _, err := io.Copy(io.Discard, f); err != nil {
				return err
			}
			close(firstRead)
			for n := 1; ; n++ {
				if _, err := r.Next(); err == io.EOF {
					if n != len(fx.expected(t))-1 { // qubes.xml is not a Next
						return fmt.Errorf("read %d files", n)
					}
					return nil
				} else if err != nil {
					return err
				}
			}
		}()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("stuck: the reader waits for Select, and Select for the first file's end")
	}
}
