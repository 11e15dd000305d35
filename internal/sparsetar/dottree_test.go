package sparsetar

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A template's directory as formats 2 and 3 stored it: GNU tar of "."
// with the names prefixed, sparse files as old-GNU 'S' members. (The
// reference writers also prefixed symlink targets; the S flag keeps them
// here so the trees compare equal.)
func TestExtractDotTreeFromGNUTar(t *testing.T) {
	home := makeHome(t)
	archive := gnuTar(t, home, nil, "--format=gnu", "--sparse", "--xform=s:^.:vm7/\\0:S", "-cf", "-", ".")
	out := filepath.Join(t.TempDir(), "vm7")
	must(t, ExtractDotTree(bytes.NewReader(archive), "vm7/.", out, 1<<30))
	assertSameTree(t, home, out)
	checkSparse(t, "sparse.img", filepath.Join(home, "sub/sparse.img"), filepath.Join(out, "sub/sparse.img"), true)

	// The data counts, not the 8 MiB the sparse image's holes make it.
	n, top, err := ReadDotTree(bytes.NewReader(archive), "vm7/.", 1<<30)
	if err != nil || n == 0 || n >= mib {
		t.Errorf("ReadDotTree = %d, %v; want the data bytes, its holes left out", n, err)
	}
	// The regular files at the top, as a restore looks for a template's images there.
	var want []string
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if e.Type().IsRegular() {
			want = append(want, e.Name())
		}
	}
	if !slices.Equal(top, want) {
		t.Errorf("top-level files %q, want %q", top, want)
	}
	if _, _, err := ReadDotTree(bytes.NewReader(archive), "vm7/.", n-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadDotTree over its limit: %v, want ErrTooLarge", err)
	}
	if err := ExtractDotTree(bytes.NewReader(archive), "vm7/.", filepath.Join(t.TempDir(), "vm7"), n); err != nil {
		t.Errorf("ExtractDotTree within the data limit: %v", err)
	}
}

func TestDotTreeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prefix  string
		entries []entry
		err     error
	}{
		{"prefix without /.", "vm7", []entry{dir("vm7/./")}, ErrUnsafeName},
		{"unsafe prefix", "../vm7/.", []entry{dir("../vm7/./")}, ErrUnsafeName},
		{"dot-dot below", "vm7/.", []entry{dir("vm7/./"), reg("vm7/./../x", "x")}, ErrUnsafeName},
		{"second dot", "vm7/.", []entry{reg("vm7/././x", "x")}, ErrUnsafeName},
		{"other VM", "vm7/.", []entry{reg("vm8/./x", "x")}, ErrUnsafeName},
		{"without the dot", "vm7/.", []entry{reg("vm7/x", "x")}, ErrUnsafeName},
		{"absolute", "vm7/.", []entry{reg("/vm7/./x", "x")}, ErrUnsafeName},
		{"hard link outside", "vm7/.", []entry{reg("vm7/./a", "a"), hardlink("vm7/./b", "vm8/./a")}, ErrUnsafeName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := tarOf(t, tc.entries...)
			s := newSandbox(t)
			if err := ExtractDotTree(bytes.NewReader(archive), tc.prefix, s.out, 1<<20); !errors.Is(err, tc.err) {
				t.Errorf("ExtractDotTree: %v, want %v", err, tc.err)
			}
			s.check(t)
			if _, _, err := ReadDotTree(bytes.NewReader(archive), tc.prefix, 1<<20); !errors.Is(err, tc.err) {
				t.Errorf("ReadDotTree: %v, want %v", err, tc.err)
			}
		})
	}
	// A hard link to a file of the same tree is kept.
	archive := tarOf(t, dir("vm7/./"), reg("vm7/./a", "data"), hardlink("vm7/./b", "vm7/./a"))
	out := filepath.Join(t.TempDir(), "vm7")
	must(t, ExtractDotTree(bytes.NewReader(archive), "vm7/.", out, 1<<20))
	if b, err := os.ReadFile(filepath.Join(out, "b")); err != nil || string(b) != "data" {
		t.Errorf("hard link: %q, %v", b, err)
	}
}
