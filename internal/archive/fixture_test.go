package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pedos.dev/backup/internal/scryptenc"
	"pedos.dev/backup/internal/sparsetar"
	"pedos.dev/backup/internal/testutil"
)

// Tests use a cheap KDF and small chunks so that files span many chunks.
var (
	testParams = scryptenc.Params{LogN: 10, R: 8, P: 1}
	testPass   = []byte("correct horse battery staple")
)

const testChunk = 64 << 10

var testTime = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// fixture is a small host-like source tree: a sparse volume, a config
// file, an empty marker and a dom0 home with nested files and a symlink.
type fixture struct {
	dir   string
	files []string // stored file names in archive order (after qubes.xml)
}

const fixtureXML = "<qubes>\n  <domains/>\n</qubes>\n"

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func textData(n int) []byte {
	words := strings.Fields("qube template dom0 backup restore volume private root firewall netvm label")
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString(words[(i*7+i/3)%len(words)])
		b.WriteByte(" \n"[i%9/8])
	}
	return b.Bytes()[:n]
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "vm1"), 0o755))
	img, err := os.Create(filepath.Join(dir, "vm1", "private.img"))
	must(err)
	must(img.Truncate(4 << 20))
	_, err = img.WriteAt(randomData(300<<10, 1), 0)
	must(err)
	_, err = img.WriteAt(textData(200<<10), 2<<20)
	must(err)
	_, err = img.WriteAt([]byte("end of disk"), 4<<20-11)
	must(err)
	must(img.Close())
	must(os.WriteFile(filepath.Join(dir, "vm1", "firewall.xml"), []byte("<firewall version=\"2\"/>\n"), 0o644))
	home := filepath.Join(dir, "home", "user")
	must(os.MkdirAll(filepath.Join(home, "Documents", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(home, "Documents", "note with spaces.txt"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(home, "Documents", "deep", "data.bin"), randomData(90<<10, 3), 0o600))
	must(os.Symlink("Documents/note with spaces.txt", filepath.Join(home, "link")))
	return &fixture{dir: dir, files: []string{"vm1/private.img", "vm1/firewall.xml", "vm2/empty", "dom0-home/user"}}
}

// write stores the fixture as the backup engine will: qubes.xml first,
// each VM's files, the dom0 home last.
func (fx *fixture) write(t testing.TB, out io.Writer, opts WriterOptions) (*Writer, error) {
	t.Helper()
	w, err := NewWriter(out, opts)
	if err != nil {
		return nil, err
	}
	if err := w.AddBytes(QubesXMLName, []byte(fixtureXML)); err != nil {
		return nil, err
	}
	for _, name := range fx.files {
		err := w.AddFile(name, func(dst io.Writer) error {
			tw := sparsetar.NewWriter(dst)
			switch name {
			case "vm1/private.img":
				f, err := os.Open(filepath.Join(fx.dir, name))
				if err != nil {
					return err
				}
				defer f.Close()
				if _, err := tw.AddVolume(name, f); err != nil {
					return err
				}
			case "vm1/firewall.xml":
				if err := tw.AddFile(name, filepath.Join(fx.dir, name)); err != nil {
					return err
				}
			case "vm2/empty":
				if err := tw.AddBytes(name, nil, 0o644, opts.Time); err != nil {
					return err
				}
			case "dom0-home/user":
				if err := tw.AddTree(name, filepath.Join(fx.dir, "home", "user")); err != nil {
					return err
				}
			}
			return tw.Close()
		})
		if err != nil {
			return nil, err
		}
	}
	return w, w.Close()
}

func testWriterOptions() WriterOptions {
	return WriterOptions{Passphrase: testPass, Compression: "gzip", Params: testParams, ChunkSize: testChunk}
}

func testReaderOptions() ReaderOptions {
	return ReaderOptions{Passphrase: testPass}
}

func (fx *fixture) archive(t testing.TB, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := fx.write(t, &buf, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// expected returns a digest of each stored file's content as readArchive
// reports it.
func (fx *fixture) expected(t testing.TB) map[string]string {
	t.Helper()
	want := map[string]string{QubesXMLName: digest([]byte(fixtureXML))}
	for _, name := range fx.files {
		switch {
		case name == "vm2/empty":
			want[name] = digest(nil)
		case strings.HasPrefix(name, "dom0-home/"):
			want[name] = testutil.TreeDigest(t, filepath.Join(fx.dir, "home", "user"))
		default:
			b, err := os.ReadFile(filepath.Join(fx.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			want[name] = digest(b)
		}
	}
	return want
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// readArchive reads every file and returns digests of their contents
// (trees extracted to disk), or the first error.
func readArchive(t testing.TB, data io.Reader, opts ReaderOptions) (map[string]string, error) {
	t.Helper()
	r, err := NewReader(data, opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	got := map[string]string{QubesXMLName: digest(r.QubesXML())}
	for {
		f, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if strings.HasPrefix(f.Name, "dom0-home/") {
			dir := t.TempDir()
			if err := sparsetar.ExtractTree(f, f.Name, dir, 1<<30); err != nil {
				return got, fmt.Errorf("extracting %s: %w", f.Name, err)
			}
			got[f.Name] = testutil.TreeDigest(t, dir)
			continue
		}
		var buf bytes.Buffer
		if _, err := sparsetar.ExtractFile(f, f.Name, &buf, 1<<30); err != nil {
			return got, fmt.Errorf("extracting %s: %w", f.Name, err)
		}
		got[f.Name] = digest(buf.Bytes())
	}
}

func compareDigests(t testing.TB, got, want map[string]string) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: content differs\n got %q\nwant %q", name, got[name], w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected file %s", name)
		}
	}
}
