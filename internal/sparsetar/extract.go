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

// Skipper is a destination that takes a hole by moving past it, such as a
// SparseWriter: ExtractFile then reads a sparse member's data regions
// only, calling Skip for each hole, instead of writing its zeros.
type Skipper interface {
	io.Writer
	Skip(n int64) error
}

func isSkipper(w io.Writer) bool { _, ok := w.(Skipper); return ok }

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
	s, n, err := extractFirst(r, want, dst, maxSize)
	if err != nil {
		return n, err
	}
	return n, s.end(want)
}

// ExtractFileWithCompanion is ExtractFile for a stream in which want may be
// followed by one more regular file, its companion: a name without a
// slash other than want, of at most companionMax bytes. It returns the
// companion's name and content, or "" and nil when there is none.
func ExtractFileWithCompanion(r io.Reader, want string, dst io.Writer, maxSize, companionMax int64) (n int64, companion string, content []byte, err error) {
	s, n, err := extractFirst(r, want, dst, maxSize)
	if err != nil {
		return n, "", nil, err
	}
	hdr, err := s.next()
	if err == io.EOF {
		return n, "", nil, nil
	}
	if err != nil {
		return n, "", nil, err
	}
	name := memberName(hdr)
	if err := checkName(name); err != nil {
		return n, "", nil, err
	}
	if name == want || strings.Contains(name, "/") || !isRegular(hdr.Typeflag) {
		return n, "", nil, fmt.Errorf("%w: %s of type %q after %q, want a regular file with a plain name", ErrUnexpectedMember, elide.Quote(hdr.Name), hdr.Typeflag, want)
	}
	var buf bytes.Buffer
	if _, err := s.content(&buf, hdr, companionMax); err != nil {
		return n, "", nil, err
	}
	if err := s.end(name); err != nil {
		return n, "", nil, err
	}
	return n, name, buf.Bytes(), nil
}

// extractFirst writes the content of the stream's first member, which must
// be the regular file want, to dst.
func extractFirst(r io.Reader, want string, dst io.Writer, maxSize int64) (*members, int64, error) {
	if err := checkName(want); err != nil {
		return nil, 0, err
	}
	s := newMembers(r)
	hdr, err := s.next()
	if err == io.EOF {
		return nil, 0, fmt.Errorf("%w: archive is empty, want %q", ErrUnexpectedMember, want)
	}
	if err != nil {
		return nil, 0, err
	}
	name := memberName(hdr)
	if err := checkName(name); err != nil {
		return nil, 0, err
	}
	if name != want || !isRegular(hdr.Typeflag) {
		return nil, 0, fmt.Errorf("%w: %s of type %q, want regular file %q", ErrUnexpectedMember, elide.Quote(hdr.Name), hdr.Typeflag, want)
	}
	if _, err := s.content(dst, hdr, maxSize); err != nil {
		return nil, 0, err
	}
	return s, hdr.Size, nil
}

// end checks that the stream ends after the member last, which was read.
func (s *members) end(last string) error {
	switch hdr, err := s.next(); {
	case err == nil:
		return fmt.Errorf("%w: %s after %q", ErrUnexpectedMember, elide.Quote(hdr.Name), last)
	case err != io.EOF:
		return err
	}
	return nil
}

// members reads an inner tar stream member by member, keeping the bytes
// of each member's headers for layoutOf.
type members struct {
	er       *endReader
	tr       *tar.Reader
	captured []byte
}

func newMembers(r io.Reader) *members {
	er := &endReader{r: r}
	return &members{er: er, tr: tar.NewReader(er)}
}

// next returns the next member as the package-level next does.
func (s *members) next() (*tar.Header, error) {
	s.er.startCapture()
	hdr, err := next(s.tr, s.er)
	s.captured = s.er.stopCapture()
	return hdr, err
}

// admit returns the bytes of data the regular member hdr carries, or
// ErrTooLarge when that is more than budget. With skipHoles (a Skipper
// or io.Discard destination) and a layout layoutOf recovers, that is its
// data alone; otherwise archive/tar makes the zeros of its holes, and the
// apparent length counts.
func (s *members) admit(hdr *tar.Header, budget int64, skipHoles bool) (sparseLayout, bool, error) {
	if l, ok := layoutOf(hdr, s.captured); ok && skipHoles {
		if hdr.Size > MaxApparentSize {
			return l, true, fmt.Errorf("%w: %s is %d bytes long with its holes (limit %d)", ErrTooLarge, elide.Quote(hdr.Name), hdr.Size, int64(MaxApparentSize))
		}
		if l.data() > budget {
			return l, true, fmt.Errorf("%w: %s carries %d bytes of data, limit %d", ErrTooLarge, elide.Quote(hdr.Name), l.data(), budget)
		}
		return l, true, nil
	}
	// archive/tar yields exactly hdr.Size bytes (the logical size for
	// sparse members), so checking it first means nothing is written.
	if hdr.Size > budget {
		return sparseLayout{}, false, fmt.Errorf("%w: %s has %d bytes, limit %d", ErrTooLarge, elide.Quote(hdr.Name), hdr.Size, budget)
	}
	return sparseLayout{}, false, nil
}

// content writes the logical content of the regular member hdr to dst,
// once admit has let it in, and returns the bytes of data it carried.
// On error, dst may hold partial content.
func (s *members) content(dst io.Writer, hdr *tar.Header, budget int64) (int64, error) {
	l, skip, err := s.admit(hdr, budget, dst == io.Discard || isSkipper(dst))
	if err != nil {
		return 0, err
	}
	if skip {
		if _, err := copyFragments(dst, s.er, l, hdr.Size, hdr.Name); err != nil {
			return 0, err
		}
		// archive/tar, which thinks the data is still to come, is left
		// behind for a fresh one.
		s.tr = tar.NewReader(s.er)
		return l.data(), nil
	}
	n, err := io.Copy(dst, s.tr)
	if err != nil {
		return n, fmt.Errorf("sparsetar: copying %s: %w", elide.Quote(hdr.Name), err)
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
	x.dst = rootDst{root}
	return x.run(r)
}

// run extracts every member of the stream into x.dst.
func (x *treeExtractor) run(r io.Reader) error {
	s := newMembers(r)
	for {
		hdr, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := x.extract(hdr, s); err != nil {
			return err
		}
	}
	// Directory modes and times last: a read-only directory must still
	// accept its entries, and adding them would change its mtime.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.dst.finishDir(d.rel, d.mode, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// ReadTree reads an inner tar stream as ExtractTree would, making every
// check it makes (names, types, duplicates, paths through symlinks, hard
// links, content limited to maxSize, the end-of-archive marker), but
// writes nothing: verification. It returns the bytes of file content.
func ReadTree(r io.Reader, prefix string, maxSize int64) (int64, error) {
	if err := checkName(prefix); err != nil {
		return 0, err
	}
	return readTree(r, &treeExtractor{prefix: prefix}, maxSize)
}

func readTree(r io.Reader, x *treeExtractor, maxSize int64) (int64, error) {
	x.dst, x.left = modelDst{}, maxSize
	err := x.run(r)
	return maxSize - x.left, err
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
	dst    treeDst
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

func (x *treeExtractor) extract(hdr *tar.Header, s *members) error {
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
			err := x.dst.mkdir(rel)
			if errors.Is(err, fs.ErrExist) {
				// Fine if it is a directory made for an earlier member.
				if k, lerr := x.dst.kind(rel); lerr == nil && k == fs.ModeDir {
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
		return x.file(rel, hdr, s, mode)
	case hdr.Typeflag == tar.TypeSymlink:
		if err := x.makeParents(rel); err != nil {
			return err
		}
		// Stored as is, even absolute or pointing up: nothing is ever
		// written through a path that has a symlink in it.
		return dup(x.dst.symlink(hdr.Linkname, rel), hdr.Name)
	case hdr.Typeflag == tar.TypeLink:
		return x.link(rel, hdr)
	}
	return fmt.Errorf("%w: %s has unsupported type %q", ErrUnexpectedMember, elide.Quote(hdr.Name), hdr.Typeflag)
}

func (x *treeExtractor) file(rel string, hdr *tar.Header, s *members, mode fs.FileMode) error {
	if _, _, err := s.admit(hdr, x.left, true); err != nil {
		return fmt.Errorf("%w: %s needs more than the %d bytes left", ErrTooLarge, elide.Quote(hdr.Name), x.left)
	}
	if err := x.makeParents(rel); err != nil {
		return err
	}
	w, finish, err := x.dst.create(rel)
	if err != nil {
		return dup(err, hdr.Name)
	}
	n, err := s.content(w, hdr, x.left)
	if err != nil {
		finish(^fs.FileMode(0), time.Time{})
		return err
	}
	x.left -= n
	return finish(mode, hdr.ModTime)
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
	k, err := x.dst.kind(target)
	if err != nil || k != 0 {
		return fmt.Errorf("%w: hard link %s to %s, which is not an extracted regular file", ErrUnexpectedMember, elide.Quote(hdr.Name), elide.Quote(hdr.Linkname))
	}
	if err := x.makeParents(rel); err != nil {
		return err
	}
	return dup(x.dst.link(target, rel), hdr.Name)
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
		k, err := x.dst.kind(dir)
		switch {
		case err != nil:
			return err
		case k == fs.ModeSymlink:
			return fmt.Errorf("%w: %s passes through symlink %s", ErrUnsafeName, elide.Quote(rel), elide.Quote(dir))
		case k != fs.ModeDir:
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
		err = x.dst.mkdirAll(path.Dir(rel))
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
