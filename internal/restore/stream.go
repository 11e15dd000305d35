package restore

import (
	"archive/tar"
	"bufio"
	"bytes"
	"io"
	"strings"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/legacy"
	"pedos.dev/backup/internal/sparsetar"
)

// stream is what a data pass reads, whatever the format: the stored files
// in archive order, each an inner tar stream, decrypted, authenticated and
// decompressed.
type stream interface {
	// Next returns the next selected file, io.EOF at a proven end.
	Next() (name string, r io.Reader, err error)
	// Seen lists the files met so far, selected or not.
	Seen() []string
	// FailedIn names the file a failure concerns ("" if unknown).
	FailedIn() string
	// FailedAfterFiles: the failure came after every file had ended
	// (format 4: in or after the manifest).
	FailedAfterFiles() bool
	Close() error
}

// format4 is the archive reader of format 4.
type format4 struct{ r *archive.Reader }

func (s format4) Next() (string, io.Reader, error) {
	f, err := s.r.Next()
	if err != nil {
		return "", nil, err
	}
	return f.Name, f, nil
}

func (s format4) Seen() []string {
	var out []string
	for _, mf := range s.r.Seen() {
		out = append(out, mf.Name)
	}
	return out
}

func (s format4) FailedIn() string       { return s.r.FailedIn() }
func (s format4) FailedAfterFiles() bool { return s.r.FailedAfterFiles() }
func (s format4) Close() error           { return s.r.Close() }

// format23 is the reader of formats 2 and 3.
type format23 struct{ r *legacy.Reader }

func (s format23) Next() (string, io.Reader, error) {
	f, err := s.r.Next()
	if err != nil {
		return "", nil, err
	}
	return f.Name, f, nil
}

func (s format23) Seen() []string         { return s.r.Seen() }
func (s format23) FailedIn() string       { return s.r.FailedIn() }
func (s format23) FailedAfterFiles() bool { return false } // no manifest: its end is its last file's
func (s format23) Close() error           { return s.r.Close() }

// format1 reads the files of a format 1 directory in turn.
type format1 struct {
	files  []legacy.V1File
	next   int
	cur    io.ReadCloser
	seen   []string
	choose func(string) bool
}

func (s *format1) Next() (string, io.Reader, error) {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	for s.next < len(s.files) {
		f := s.files[s.next]
		s.next++
		s.seen = append(s.seen, f.Name)
		if s.choose(f.Name) {
			s.cur = f.Open()
			return f.Name, s.cur, nil
		}
	}
	return "", nil, io.EOF
}

func (s *format1) Seen() []string         { return s.seen }
func (s *format1) FailedIn() string       { return "" }
func (s *format1) FailedAfterFiles() bool { return false }
func (s *format1) Close() error {
	if s.cur != nil {
		s.cur.Close()
	}
	return nil
}

// isDotTree reports whether a stored file is a whole directory the way
// formats 2 and 3 stored a template ("vm7/.").
func isDotTree(name string) bool { return strings.HasSuffix(name, "/.") }

// peekIsDir tells, without consuming it, whether the inner tar stream br
// holds a directory tree (its first member is a directory) rather than
// one file: format 1 stores directories such as apps.templates as trees.
func peekIsDir(br *bufio.Reader) bool {
	head, _ := br.Peek(br.Size())
	hdr, err := tar.NewReader(bytes.NewReader(head)).Next()
	return err == nil && hdr.Typeflag == tar.TypeDir
}

// checkStored reads a stored file to its end through the inner tar parser
// (for verify-only, and for files a restore does not keep), whatever it
// holds: one file, a tree, a whole template directory.
func checkStored(f io.Reader, name string, limit int64) error {
	if isDotTree(name) {
		_, _, err := sparsetar.ReadDotTree(f, name, limit)
		return err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if peekIsDir(br) {
		_, err := sparsetar.ReadTree(br, name, limit)
		return err
	}
	_, err := sparsetar.ExtractFile(br, name, io.Discard, limit)
	return err
}
