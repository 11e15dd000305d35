package sparsetar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// holeBlock is the granularity at which zeros become holes: the usual
// filesystem block, so a skipped block really is unallocated.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// SparseWriter writes a file from offset 0, leaving every all-zero,
// 4 KiB-aligned block as a hole instead of writing it. The result does not
// depend on how the input is split into Write calls. The file must be an
// empty regular file (a skipped block would otherwise keep old content);
// this is checked on first use.
type SparseWriter struct {
	f       *os.File
	pos     int64  // file offset of pending[0], a multiple of holeBlock
	pending []byte // start of the block at pos, not yet decided on
	checked bool
	err     error
}

// NewSparseWriter returns a SparseWriter that writes to f.
func NewSparseWriter(f *os.File) *SparseWriter {
	return &SparseWriter{f: f, pending: make([]byte, 0, holeBlock)}
}

// Write stores p after everything written before.
func (s *SparseWriter) Write(p []byte) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if len(s.pending) > 0 || len(p) < holeBlock {
			k := copy(s.pending[len(s.pending):holeBlock], p)
			s.pending = s.pending[:len(s.pending)+k]
			p = p[k:]
			if len(s.pending) == holeBlock {
				if err := s.store(s.pending); err != nil {
					return n - len(p) - k, err // this call's k bytes are lost
				}
				s.pending = s.pending[:0]
			}
			continue
		}
		whole := len(p) &^ (holeBlock - 1)
		if err := s.store(p[:whole]); err != nil {
			return n - len(p), err
		}
		p = p[whole:]
	}
	return n, nil
}

// Skip appends n zero bytes without writing or even looking at them: a
// hole known in advance, such as one found with SEEK_HOLE.
func (s *SparseWriter) Skip(n int64) error {
	if err := s.check(); err != nil {
		return err
	}
	// Complete a pending partial block with zeros, then jump whole blocks.
	for n > 0 && len(s.pending) > 0 {
		k := min(n, int64(holeBlock-len(s.pending)))
		if _, err := s.Write(zeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	whole := n &^ (holeBlock - 1)
	s.pos += whole
	_, err := s.Write(zeroBlock[:n-whole])
	return err
}

// CopySparse copies the first size bytes of src into dst, an empty regular
// file, reading only src's data regions and leaving holes as holes (and
// all-zero blocks within data as holes too). It does not close dst.
func CopySparse(dst, src *os.File, size int64) error {
	regions, err := dataRegions(src, size)
	if err != nil {
		return err
	}
	w := NewSparseWriter(dst)
	at := int64(0)
	for _, r := range regions {
		if err := w.Skip(r.off - at); err != nil {
			return err
		}
		if _, err := io.Copy(w, io.NewSectionReader(src, r.off, r.len)); err != nil {
			return err
		}
		at = r.off + r.len
	}
	if err := w.Skip(size - at); err != nil {
		return err
	}
	return w.Close()
}

// store writes whole blocks at s.pos, skipping all-zero ones and writing
// each run of data blocks with one call.
func (s *SparseWriter) store(b []byte) error {
	for len(b) > 0 {
		i := 0
		for i < len(b) && bytes.Equal(b[i:i+holeBlock], zeroBlock[:]) {
			i += holeBlock
		}
		j := i
		for j < len(b) && !bytes.Equal(b[j:j+holeBlock], zeroBlock[:]) {
			j += holeBlock
		}
		if j > i {
			if _, err := s.f.WriteAt(b[i:j], s.pos+int64(i)); err != nil {
				s.err = err
				return err
			}
		}
		s.pos += int64(j)
		b = b[j:]
	}
	return nil
}

// Close writes the last partial block (unless it is zeros) and sets the
// file's length, which creates any trailing hole. It does not close f.
func (s *SparseWriter) Close() error {
	if err := s.check(); err != nil {
		return err
	}
	if !bytes.Equal(s.pending, zeroBlock[:len(s.pending)]) {
		if _, err := s.f.WriteAt(s.pending, s.pos); err != nil {
			s.err = err
			return err
		}
	}
	s.pos += int64(len(s.pending))
	s.pending = s.pending[:0]
	if err := s.f.Truncate(s.pos); err != nil {
		s.err = err
		return err
	}
	s.err = errors.New("sparsetar: SparseWriter is closed")
	return nil
}

// check returns a sticky error, and on first use verifies that the file is
// an empty regular file.
func (s *SparseWriter) check() error {
	if s.err != nil || s.checked {
		return s.err
	}
	s.checked = true
	fi, err := s.f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != 0) {
		err = fmt.Errorf("sparsetar: SparseWriter needs an empty regular file, %s is not", s.f.Name())
	}
	s.err = err
	return err
}
