package sparsetar

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"pedos.dev/backup/internal/elide"
)

// endReader gives every read archive/tar makes io.ReadFull semantics, so
// that one call here is one block or data read there, and remembers whether
// the last one came up short. archive/tar reports io.EOF both for a proper
// end-of-archive marker and for a stream that simply stops between
// members; only in the second case was its last read short.
type endReader struct {
	r     io.Reader
	short bool
	// A copy of what is read while capturing (see holes.go).
	captured            []byte
	capturing, overflow bool
}

func (e *endReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := io.ReadFull(e.r, p)
	e.short = err != nil
	e.keep(p[:n])
	return n, err
}

// next returns the next member, skipping pax global headers (metadata, not
// members). At the end of the archive it returns io.EOF only if the
// end-of-archive marker was present and only zero padding follows it.
func next(tr *tar.Reader, er *endReader) (*tar.Header, error) {
	for {
		hdr, err := tr.Next()
		switch {
		case err == io.EOF:
			return nil, checkEnd(er)
		case err != nil:
			return nil, fmt.Errorf("sparsetar: reading header: %w", err)
		case hdr.Typeflag != tar.TypeXGlobalHeader:
			return hdr, nil
		}
	}
}

// maxTrailingZeros is far above any tar record size (GNU's is 10 KiB).
const maxTrailingZeros = 1 << 20

func checkEnd(er *endReader) error {
	if er.short {
		return fmt.Errorf("sparsetar: archive ends without end-of-archive marker: %w", io.ErrUnexpectedEOF)
	}
	// GNU tar pads the archive with zeros to a 10 KiB record. Anything
	// else after the marker is hidden content: refuse it, and refuse
	// endless zeros too (a decompression bomb costs time, if not memory).
	buf := make([]byte, 32<<10)
	var trailing int
	for {
		n, err := er.r.Read(buf)
		trailing += n
		if !isZero(buf[:n]) {
			return fmt.Errorf("%w: data after end-of-archive marker", ErrUnexpectedMember)
		}
		if trailing > maxTrailingZeros {
			return fmt.Errorf("%w: more than %d bytes of padding after the end-of-archive marker", ErrUnexpectedMember, maxTrailingZeros)
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}

func isSparseWriter(w io.Writer) bool { _, ok := w.(*SparseWriter); return ok }

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// memberName is the member's name without the slash that ends directories.
func memberName(hdr *tar.Header) string {
	if hdr.Typeflag == tar.TypeDir {
		return strings.TrimSuffix(hdr.Name, "/")
	}
	return hdr.Name
}

// isRegular reports whether a member of type t has file content.
// archive/tar turns TypeRegA into TypeReg and old GNU 'S' sparse members
// keep TypeGNUSparse; either way it reads them back as logical content.
func isRegular(t byte) bool {
	return t == tar.TypeReg || t == tar.TypeGNUSparse || t == tar.TypeCont
}

// ExtractFile reads an inner tar stream that must hold exactly one regular
// (possibly sparse) member named want, and writes its logical content to
// dst, returning its length. It fails with ErrUnsafeName for an unsafe
// member name, ErrUnexpectedMember for another name, another type or a
// second member, ErrTooLarge (before writing anything) if the content is
// longer than maxSize, and an error wrapping io.ErrUnexpectedEOF if the
// stream ends before its end-of-archive marker. On error, dst may hold
// partial content and must be discarded.
func ExtractFile(r io.Reader, want string, dst io.Writer, maxSize int64) (int64, error) {
	if err := checkName(want); err != nil {
		return 0, err
	}
	er := &endReader{r: r}
	tr := tar.NewReader(er)
	er.startCapture()
	hdr, err := next(tr, er)
	captured := er.stopCapture()
	if err == io.EOF {
		return 0, fmt.Errorf("%w: archive is empty, want %q", ErrUnexpectedMember, want)
	}
	if err != nil {
		return 0, err
	}
	name := memberName(hdr)
	if err := checkName(name); err != nil {
		return 0, err
	}
	if name != want || !isRegular(hdr.Typeflag) {
		return 0, fmt.Errorf("%w: %s of type %q, want regular file %q", ErrUnexpectedMember, elide.Quote(hdr.Name), hdr.Typeflag, want)
	}
	// archive/tar yields exactly hdr.Size bytes (the logical size for
	// sparse members), so checking it first means nothing is written.
	if hdr.Size > maxSize {
		return 0, fmt.Errorf("%w: %q has %d bytes, limit %d", ErrTooLarge, want, hdr.Size, maxSize)
	}
	if l, ok := pax1Layout(hdr, captured); ok && (dst == io.Discard || isSparseWriter(dst)) {
		// The holes are skipped (holes.go); archive/tar, which thinks the
		// data is still to come, is left behind for a fresh one.
		n, err := copyFragments(dst, er, l, hdr.Size, want)
		if err != nil {
			return n, err
		}
		tr = tar.NewReader(er)
	} else if n, err := io.Copy(dst, tr); err != nil {
		return n, fmt.Errorf("sparsetar: copying %q: %w", want, err)
	}
	n := hdr.Size
	switch hdr, err := next(tr, er); {
	case err == nil:
		return n, fmt.Errorf("%w: %s after %q", ErrUnexpectedMember, elide.Quote(hdr.Name), want)
	case err != io.EOF:
		return n, err
	}
	return n, nil
}

// ExtractTree extracts an inner tar stream whose members all lie under
// prefix into dir, which must be empty or not exist yet (its parent must):
// the member prefix+"/" is dir itself, prefix+"/a" is dir/a. It recreates
// directories, regular and sparse files (sparsely), symlinks as symlinks
// and hard links as hard links to files already extracted; devices and
// fifos are skipped. Modes are masked with 0777; modification times are
// restored except on symlinks. The total content is limited to maxSize
// bytes (ErrTooLarge).
//
// Everything is written through an os.Root on dir, and a member whose path
// passes through a symlink, is absolute, has "..", empty or control
// characters, or lies outside prefix fails with ErrUnsafeName; a duplicate
// member or an unknown type fails with ErrUnexpectedMember. On error, dir
// holds a partial tree.
func ExtractTree(r io.Reader, prefix, dir string, maxSize int64) error {
	if err := checkName(prefix); err != nil {
		return err
	}
	return extractTree(r, &treeExtractor{prefix: prefix, left: maxSize}, dir)
}

func extractTree(r io.Reader, x *treeExtractor, dir string) error {
	if err := emptyDir(dir); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x.root = root
	er := &endReader{r: r}
	tr := tar.NewReader(er)
	for {
		hdr, err := next(tr, er)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := x.extract(hdr, tr); err != nil {
			return err
		}
	}
	// Directory modes and times last: a read-only directory must still
	// accept its entries, and adding them would change its mtime.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := root.Chmod(d.rel, d.mode); err != nil {
			return err
		}
		_ = root.Chtimes(d.rel, d.mtime, d.mtime) // best effort
	}
	return nil
}

// ReadTree reads an inner tar stream as ExtractTree would, names checked
// against prefix, content limited to maxSize and the stream read to its
// end-of-archive marker, but writes nothing: verification. It returns the
// bytes of file content.
func ReadTree(r io.Reader, prefix string, maxSize int64) (int64, error) {
	if err := checkName(prefix); err != nil {
		return 0, err
	}
	return readTree(r, &treeExtractor{prefix: prefix}, maxSize)
}

func readTree(r io.Reader, x *treeExtractor, maxSize int64) (int64, error) {
	er := &endReader{r: r}
	tr := tar.NewReader(er)
	var total int64
	for {
		hdr, err := next(tr, er)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if _, err := x.rel(memberName(hdr)); err != nil {
			return total, err
		}
		if hdr.Size > maxSize-total {
			return total, fmt.Errorf("%w: %s makes the tree larger than %d bytes", ErrTooLarge, elide.Quote(hdr.Name), maxSize)
		}
		n, err := io.Copy(io.Discard, tr)
		total += n
		if err != nil {
			return total, fmt.Errorf("sparsetar: reading %s: %w", elide.Quote(hdr.Name), err)
		}
	}
}

// emptyDir creates dir, or checks that it is an empty directory.
func emptyDir(dir string) error {
	err := os.Mkdir(dir, 0o700)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if names, err := f.Readdirnames(1); len(names) > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("sparsetar: %s is not empty", dir)
		}
		return err
	}
	return nil
}

type treeExtractor struct {
	root   *os.Root
	prefix string
	dot    bool  // prefix ends in "/." (ExtractDotTree)
	left   int64 // bytes of content still allowed
	dirs   []dirMeta
}

type dirMeta struct {
	rel   string
	mode  fs.FileMode
	mtime time.Time
}

// rel maps a member name to a path relative to the root ("." for prefix).
func (x *treeExtractor) rel(name string) (string, error) {
	if x.dot {
		return x.dotRel(name)
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	if name == x.prefix {
		return ".", nil
	}
	rel, ok := strings.CutPrefix(name, x.prefix+"/")
	if !ok {
		return "", fmt.Errorf("%w: %s is outside %q", ErrUnsafeName, elide.Quote(name), x.prefix)
	}
	return rel, nil
}

func (x *treeExtractor) extract(hdr *tar.Header, tr *tar.Reader) error {
	rel, err := x.rel(memberName(hdr))
	if err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode) & 0o777 // never setuid/setgid/sticky
	switch {
	case hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock || hdr.Typeflag == tar.TypeFifo:
		return nil
	case hdr.Typeflag == tar.TypeDir:
		if rel != "." {
			if err := x.makeParents(rel); err != nil {
				return err
			}
			// Writable for now; the archive's mode is set at the end.
			err := x.root.Mkdir(rel, 0o700)
			if errors.Is(err, fs.ErrExist) {
				// Fine if it is a directory made for an earlier member.
				if fi, lerr := x.root.Lstat(rel); lerr == nil && fi.IsDir() {
					err = nil
				}
			}
			if err := dup(err, hdr.Name); err != nil {
				return err
			}
		}
		x.dirs = append(x.dirs, dirMeta{rel, mode, hdr.ModTime})
		return nil
	case rel == ".":
		return fmt.Errorf("%w: %s must be a directory", ErrUnexpectedMember, elide.Quote(hdr.Name))
	case isRegular(hdr.Typeflag):
		return x.file(rel, hdr, tr, mode)
	case hdr.Typeflag == tar.TypeSymlink:
		if err := x.makeParents(rel); err != nil {
			return err
		}
		// Stored as is, even absolute or pointing up: nothing is ever
		// written through a path that has a symlink in it.
		return dup(x.root.Symlink(hdr.Linkname, rel), hdr.Name)
	case hdr.Typeflag == tar.TypeLink:
		return x.link(rel, hdr)
	}
	return fmt.Errorf("%w: %s has unsupported type %q", ErrUnexpectedMember, elide.Quote(hdr.Name), hdr.Typeflag)
}

func (x *treeExtractor) file(rel string, hdr *tar.Header, tr *tar.Reader, mode fs.FileMode) error {
	if hdr.Size > x.left {
		return fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTooLarge, elide.Quote(hdr.Name), hdr.Size, x.left)
	}
	x.left -= hdr.Size
	if err := x.makeParents(rel); err != nil {
		return err
	}
	// O_EXCL: never open an existing file, and above all not a symlink.
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return dup(err, hdr.Name)
	}
	defer f.Close()
	sw := NewSparseWriter(f)
	if _, err := io.Copy(sw, tr); err != nil {
		return fmt.Errorf("sparsetar: copying %s: %w", elide.Quote(hdr.Name), err)
	}
	if err := sw.Close(); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_ = x.root.Chtimes(rel, hdr.ModTime, hdr.ModTime) // best effort
	return nil
}

// link recreates a hard link to a regular file extracted before.
func (x *treeExtractor) link(rel string, hdr *tar.Header) error {
	target, err := x.rel(hdr.Linkname)
	if err != nil {
		return err
	}
	if err := x.checkPath(target); err != nil {
		return err
	}
	fi, err := x.root.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: hard link %s to %s, which is not an extracted regular file", ErrUnexpectedMember, elide.Quote(hdr.Name), elide.Quote(hdr.Linkname))
	}
	if err := x.makeParents(rel); err != nil {
		return err
	}
	return dup(x.root.Link(target, rel), hdr.Name)
}

// checkPath fails if any directory above rel is a symlink, so that no
// member is ever written through a link, even one pointing inside the root.
// It returns fs.ErrNotExist (wrapped) for a missing directory.
func (x *treeExtractor) checkPath(rel string) error {
	dir := ""
	for _, c := range strings.Split(path.Dir(rel), "/") {
		if c == "." {
			break
		}
		dir = path.Join(dir, c)
		fi, err := x.root.Lstat(dir)
		switch {
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s passes through symlink %s", ErrUnsafeName, elide.Quote(rel), elide.Quote(dir))
		case !fi.IsDir():
			return fmt.Errorf("%w: %s is below non-directory %s", ErrUnexpectedMember, elide.Quote(rel), elide.Quote(dir))
		}
	}
	return nil
}

// makeParents checks the directories above rel and creates missing ones.
func (x *treeExtractor) makeParents(rel string) error {
	err := x.checkPath(rel)
	if errors.Is(err, fs.ErrNotExist) {
		// Members normally follow their directory; tolerate archives
		// that omit it. MkdirAll in the root cannot leave it.
		err = x.root.MkdirAll(path.Dir(rel), 0o700)
		if err == nil {
			err = x.checkPath(rel)
		}
	}
	return err
}

// dup turns "already exists" into ErrUnexpectedMember: a tar stream may
// repeat a name, but replacing what was extracted is never needed here.
func dup(err error, name string) error {
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s duplicates another member", ErrUnexpectedMember, elide.Quote(name))
	}
	return err
}
