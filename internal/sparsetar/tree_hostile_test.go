package sparsetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandbox is an extraction target out inside parent, next to nothing,
// plus a separate outside directory holding a victim file that hostile
// archives aim at.
type sandbox struct{ parent, out, outside string }

func newSandbox(t testing.TB) sandbox {
	s := sandbox{parent: t.TempDir(), outside: t.TempDir()}
	s.out = filepath.Join(s.parent, "out")
	if err := os.WriteFile(filepath.Join(s.outside, "victim"), []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// check fails if anything appeared beside out or in outside, or the
// victim changed.
func (s sandbox) check(t testing.TB) {
	t.Helper()
	for dir, want := range map[string]string{s.parent: "out", s.outside: "victim"} {
		names, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if n.Name() != want {
				t.Errorf("%s appeared outside the extraction directory", filepath.Join(dir, n.Name()))
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.outside, "victim")); err != nil || string(b) != "safe" {
		t.Errorf("victim file: %q, %v", b, err)
	}
}

func withType(e entry, typ byte) entry { e.hdr.Typeflag = typ; return e }

func TestExtractTreeHostile(t *testing.T) {
	outside := "/OUTSIDE" // replaced by the sandbox's outside directory
	// A sparse member's holes cost nothing, so only a length beyond any
	// disk is refused for them; its data counts against the limit.
	bomb, bombMap, _, err := sparseHeaders("p/big", MaxApparentSize+1, []region{{0, 512}}, time.Unix(0, 0))
	must(t, err)
	dense, denseMap, _, err := sparseHeaders("p/b", 1<<30, []region{{0, 1024}}, time.Unix(0, 0))
	must(t, err)
	for _, tc := range []struct {
		name    string
		entries []entry
		raw     []byte // used instead of entries when set
		max     int64
		err     error
	}{
		{"dotdot", []entry{reg("p/../x", "x")}, nil, 100, ErrUnsafeName},
		{"dotdot at top", []entry{reg("../x", "x")}, nil, 100, ErrUnsafeName},
		{"absolute", []entry{reg(outside+"/x", "x")}, nil, 100, ErrUnsafeName},
		{"outside prefix", []entry{reg("q/x", "x")}, nil, 100, ErrUnsafeName},
		{"prefix lookalike", []entry{reg("pp/x", "x")}, nil, 100, ErrUnsafeName},
		{"control character", []entry{reg("p/a\x01b", "x")}, nil, 100, ErrUnsafeName},
		{"empty component", []entry{reg("p//x", "x")}, nil, 100, ErrUnsafeName},
		{"symlink out, file through it", []entry{symlink("p/a", outside), reg("p/a/file", "evil")}, nil, 100, ErrUnsafeName},
		{"symlink up, file through it", []entry{symlink("p/a", ".."), reg("p/a/file", "evil")}, nil, 100, ErrUnsafeName},
		{"symlink inside, file through it", []entry{dir("p/sub/"), symlink("p/a", "sub"), reg("p/a/file", "x")}, nil, 100, ErrUnsafeName},
		{"symlink out, dir through it", []entry{symlink("p/a", outside), dir("p/a/d/")}, nil, 100, ErrUnsafeName},
		{"symlink out, symlink through it", []entry{symlink("p/a", outside), symlink("p/a/l", "x")}, nil, 100, ErrUnsafeName},
		{"symlink out, deep file through it", []entry{symlink("p/a", outside), reg("p/a/x/y", "evil")}, nil, 100, ErrUnsafeName},
		{"symlink then file of same name", []entry{symlink("p/a", outside+"/victim"), reg("p/a", "evil")}, nil, 100, ErrUnexpectedMember},
		{"symlink then dir of same name", []entry{symlink("p/a", outside), dir("p/a/")}, nil, 100, ErrUnexpectedMember},
		{"file twice", []entry{reg("p/a", "1"), reg("p/a", "2")}, nil, 100, ErrUnexpectedMember},
		{"file then dir of same name", []entry{reg("p/a", "1"), dir("p/a/")}, nil, 100, ErrUnexpectedMember},
		{"file below a file", []entry{reg("p/a", "1"), reg("p/a/b", "2")}, nil, 100, ErrUnexpectedMember},
		{"hard link absolute", []entry{hardlink("p/h", outside+"/victim")}, nil, 100, ErrUnsafeName},
		{"hard link dotdot", []entry{hardlink("p/h", "p/../../victim")}, nil, 100, ErrUnsafeName},
		{"hard link outside prefix", []entry{hardlink("p/h", "q/x")}, nil, 100, ErrUnsafeName},
		{"hard link to symlink", []entry{symlink("p/s", outside+"/victim"), hardlink("p/h", "p/s")}, nil, 100, ErrUnexpectedMember},
		{"hard link through symlink", []entry{dir("p/d/"), reg("p/d/f", "x"), symlink("p/s", "d"), hardlink("p/h", "p/s/f")}, nil, 100, ErrUnsafeName},
		{"hard link to missing file", []entry{hardlink("p/h", "p/none")}, nil, 100, ErrUnexpectedMember},
		{"hard link to directory", []entry{dir("p/d/"), hardlink("p/h", "p/d")}, nil, 100, ErrUnexpectedMember},
		{"file at the prefix", []entry{reg("p", "x")}, nil, 100, ErrUnexpectedMember},
		{"symlink at the prefix", []entry{symlink("p", outside)}, nil, 100, ErrUnexpectedMember},
		{"name of 300 bytes", []entry{reg("p/"+strings.Repeat("n", 300), "x")}, nil, 100, syscall.ENAMETOOLONG},
		{"dir of 300 bytes", []entry{dir("p/" + strings.Repeat("d", 300) + "/")}, nil, 100, syscall.ENAMETOOLONG},
		{"unknown type", []entry{withType(reg("p/d", ""), 'D')}, nil, 100, ErrUnexpectedMember},
		{"too large in total", []entry{reg("p/a", string(make([]byte, 600))), reg("p/b", string(make([]byte, 600)))}, nil, 1000, ErrTooLarge},
		{"sparse bomb", nil, append(append(bomb, bombMap...), make([]byte, 512+1024)...), 1 << 30, ErrTooLarge},
		{"sparse data over the limit", nil, append(append(dense, denseMap...), make([]byte, 1024+1024)...), 1000, ErrTooLarge},
		{"truncated", nil, tarOf(t, reg("p/a", "x"))[:1024], 100, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			archive := tc.raw
			if archive == nil {
				for i := range tc.entries {
					e := &tc.entries[i]
					e.hdr.Name = replaceOutside(e.hdr.Name, outside, s.outside)
					e.hdr.Linkname = replaceOutside(e.hdr.Linkname, outside, s.outside)
				}
				archive = tarOf(t, tc.entries...)
			}
			err := ExtractTree(bytes.NewReader(archive), "p", s.out, tc.max)
			if !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
			// Verification runs the same checks, so it refuses alike.
			if _, err := ReadTree(bytes.NewReader(archive), "p", tc.max); !errors.Is(err, tc.err) {
				t.Errorf("ReadTree: err = %v, want %v", err, tc.err)
			}
			s.check(t)
			if tc.err == ErrTooLarge {
				if _, err := os.Lstat(filepath.Join(s.out, "b")); err == nil {
					t.Error("the member over the limit was created")
				}
			}
		})
	}
}

func replaceOutside(s, placeholder, outside string) string {
	if len(s) >= len(placeholder) && s[:len(placeholder)] == placeholder {
		return outside + s[len(placeholder):]
	}
	return s
}

// Inputs that are odd but harmless extract, with what is dangerous in them
// dropped.
func TestExtractTreeTolerated(t *testing.T) {
	setuid := reg("p/suid", "#!/bin/sh\n")
	setuid.hdr.Mode = 0o4755
	ro := dir("p/ro/")
	ro.hdr.Mode = 0o555
	dev := entry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "p/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	fifo := entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "p/fifo", Mode: 0o644}}
	archive := tarOf(t, dir("p/"), setuid, ro, reg("p/ro/f", "in a read-only dir"),
		dev, fifo, reg("p/x/y/z", "no dir entries"), reg("p/a", "linked"), hardlink("p/b", "p/a"),
		symlink("p/abs", "/etc/passwd"), symlink("p/up", "../../.."))
	s := newSandbox(t)
	must(t, ExtractTree(bytes.NewReader(archive), "p", s.out, 1000))
	s.check(t)
	for name, want := range map[string]string{
		"suid": "-rwxr-xr-x", "ro": "dr-xr-xr-x", "ro/f": "-rw-r--r--", "x/y/z": "-rw-r--r--",
		"abs": "Lrwxrwxrwx", "up": "Lrwxrwxrwx",
	} {
		fi, err := os.Lstat(filepath.Join(s.out, name))
		if err != nil || fi.Mode().String() != want {
			t.Errorf("%s: %v, %v, want %s", name, fi.Mode(), err, want)
		}
	}
	for _, name := range []string{"null", "fifo"} {
		if _, err := os.Lstat(filepath.Join(s.out, name)); err == nil {
			t.Errorf("%s was created", name)
		}
	}
	a, _ := os.Stat(filepath.Join(s.out, "a"))
	b, _ := os.Stat(filepath.Join(s.out, "b"))
	if !os.SameFile(a, b) {
		t.Error("hard link p/b is not a link to p/a")
	}
}

func TestExtractTreeNeedsEmptyDir(t *testing.T) {
	out := t.TempDir()
	must(t, os.WriteFile(filepath.Join(out, "old"), nil, 0o644))
	if err := ExtractTree(bytes.NewReader(tarOf(t, reg("p/a", "x"))), "p", out, 100); err == nil {
		t.Error("extracted into a non-empty directory")
	}
	if err := ExtractTree(bytes.NewReader(tarOf(t, reg("p/a", "x"))), "p", t.TempDir(), 100); err != nil {
		t.Errorf("existing empty directory: %v", err)
	}
}

// Cutting a valid tree stream anywhere must fail.
func TestExtractTreeTruncated(t *testing.T) {
	archive := tarOf(t, dir("p/"), reg("p/a", "some content"), symlink("p/l", "a"), dir("p/d/"), reg("p/d/b", string(make([]byte, 1500))))
	s := newSandbox(t)
	must(t, os.Mkdir(s.out, 0o755))
	for cut := range len(archive) {
		if cut%512 > 2 && cut%512 < 510 && cut%97 != 0 {
			continue // block edges and a sample of the rest
		}
		out := filepath.Join(s.out, fmt.Sprint(cut))
		if err := ExtractTree(bytes.NewReader(archive[:cut]), "p", out, 1<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d of %d: err = %v, want io.ErrUnexpectedEOF", cut, len(archive), err)
		}
	}
	s.check(t)
}
