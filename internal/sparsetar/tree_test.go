package sparsetar

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	longDir  = strings.Repeat("d", 70)
	longFile = strings.Repeat("ł", 75) // 150 bytes: a single component longer than ustar's 100
)

// makeHome builds a directory tree with the awkward cases a home has.
func makeHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "user")
	files := map[string]string{
		"sub/nested/deep.txt":          "deep\n",
		"with space.txt":               "spaces\n",
		"ünïcödé-файл.txt":             "unicode\n",
		longDir + "/" + longDir + ".x": "split into ustar prefix\n",
		longDir + "/" + longFile:       "needs a pax path record\n",
		"empty.txt":                    "",
		"sub/sparse.img":               "",
	}
	for name, body := range files {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	makeSparse(t, filepath.Join(home, "sub/sparse.img"), 8*mib, span{4 * mib, 10})
	must(t, os.Chmod(filepath.Join(home, "with space.txt"), 0o600))
	must(t, os.Chmod(filepath.Join(home, "sub/nested/deep.txt"), 0o755))
	must(t, os.Mkdir(filepath.Join(home, "emptydir"), 0o750))
	must(t, os.Symlink("sub/nested/deep.txt", filepath.Join(home, "link-rel")))
	must(t, os.Symlink("/etc/hostname", filepath.Join(home, "link-abs")))
	must(t, os.Symlink("../../escape", filepath.Join(home, "sub/link-up")))
	must(t, os.Link(filepath.Join(home, "empty.txt"), filepath.Join(home, "hardlink.txt")))
	must(t, syscall.Mkfifo(filepath.Join(home, "fifo"), 0o644))
	old := time.Unix(1600000000, 0)
	must(t, os.Chtimes(filepath.Join(home, "with space.txt"), old, old))
	return home
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// assertSameTree compares got with want: same entries except fifos, same
// types, content, permissions, symlink targets and file mtimes.
func assertSameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		wi, _ := d.Info()
		if wi.Mode()&fs.ModeNamedPipe != 0 {
			return nil
		}
		seen[rel] = true
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if gi.Mode().Type() != wi.Mode().Type() {
			t.Errorf("%s: type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())
			return nil
		}
		switch {
		case wi.Mode().IsRegular():
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: content differs", rel)
			}
			if gi.ModTime().Unix() != wi.ModTime().Unix() { // pax keeps fractions, ustar does not
				t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(filepath.Join(got, rel))
			if wl != gl {
				t.Errorf("%s: link to %q, want %q", rel, gl, wl)
			}
		}
		if wi.Mode()&fs.ModeSymlink == 0 && gi.Mode().Perm() != wi.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode().Perm(), wi.Mode().Perm())
		}
		return nil
	})
	must(t, err)
	must(t, filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if err == nil && !seen[rel] {
			t.Errorf("unexpected %s", rel)
		}
		return err
	}))
}

func treeArchive(t *testing.T, home string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	must(t, w.AddTree("dom0-home/user", home))
	must(t, w.Close())
	return buf.Bytes()
}

func TestAddTree(t *testing.T) {
	home := makeHome(t)
	archive := treeArchive(t, home)

	t.Run("deterministic", func(t *testing.T) {
		if !bytes.Equal(archive, treeArchive(t, home)) {
			t.Error("two archives of the same tree differ")
		}
	})
	t.Run("archive/tar order", func(t *testing.T) {
		tr := tar.NewReader(bytes.NewReader(archive))
		var names []string
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			names = append(names, hdr.Name)
		}
		want := []string{
			"dom0-home/user/",
			"dom0-home/user/" + longDir + "/",
			"dom0-home/user/" + longDir + "/" + longDir + ".x",
			"dom0-home/user/" + longDir + "/" + longFile,
			"dom0-home/user/empty.txt",
			"dom0-home/user/emptydir/",
			"dom0-home/user/hardlink.txt",
			"dom0-home/user/link-abs",
			"dom0-home/user/link-rel",
			"dom0-home/user/sub/",
			"dom0-home/user/sub/link-up",
			"dom0-home/user/sub/nested/",
			"dom0-home/user/sub/nested/deep.txt",
			"dom0-home/user/sub/sparse.img",
			"dom0-home/user/with space.txt",
			"dom0-home/user/ünïcödé-файл.txt",
		}
		if strings.Join(names, "\n") != strings.Join(want, "\n") {
			t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("gnu tar -xf", func(t *testing.T) {
		out := t.TempDir()
		gnuTar(t, out, archive, "-xf", "-")
		assertSameTree(t, home, filepath.Join(out, "dom0-home/user"))
	})
	t.Run("ExtractTree", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "restored")
		must(t, ExtractTree(bytes.NewReader(archive), "dom0-home/user", out, 1<<30))
		assertSameTree(t, home, out)
	})
}

// Trees written by GNU tar itself, in its default (GNU long names) and
// POSIX formats, with sparse files.
func TestExtractTreeFromGNUTar(t *testing.T) {
	home := makeHome(t)
	must(t, os.Remove(filepath.Join(home, "fifo")))
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			archive := gnuTar(t, filepath.Dir(home), nil, "--format="+format, "--sparse", "--transform=s,^user,dom0-home/user,", "-cf", "-", "user")
			out := filepath.Join(t.TempDir(), "restored")
			must(t, ExtractTree(bytes.NewReader(archive), "dom0-home/user", out, 1<<30))
			assertSameTree(t, home, out)
			checkSparse(t, "sparse.img", filepath.Join(home, "sub/sparse.img"), filepath.Join(out, "sub/sparse.img"), true)
		})
	}
}
