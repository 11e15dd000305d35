package legacy

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// File is one stored file. Reading it yields its inner tar stream (GNU
// tar's output, often with old-GNU 'S' sparse members), HMAC-checked,
// decrypted and decompressed; for format 2 the volumes are already joined.
// sparsetar reads it: ExtractDotTree for a template's "vmN/.",
// ExtractTree for the dom0 home, ExtractFile for the others. An error, not
// io.EOF, ends a damaged, altered or truncated file, and ends the Reader
// too.
type File struct {
	// Name is the archive name without the chunk suffix: "vm5/private.img",
	// "appvms/work/firewall.xml", "vm7/." (a template's whole directory,
	// whose members are "vm7/." and "vm7/./…"), "dom0-home/user".
	Name   string
	r      *Reader
	chunks *fileChunks
	src    io.Reader
	closer io.Closer // the decompressor, if any
	err    error
}

// Next returns the next selected file, skipping what is left of the
// previous one; io.EOF at the clean end of the stream. Whether the archive
// is complete only the caller can tell, from Seen and QubesXML.
func (r *Reader) Next() (*File, error) {
	if r.cur != nil {
		f := r.cur
		r.cur = nil
		f.close()
		if f.err == nil {
			f.err = errSuperseded
		}
		if r.err == nil {
			r.fail(f.Name, f.chunks.skip())
		}
	}
	for r.err == nil {
		m, err := r.peek()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			r.fail("", err)
			break
		}
		file, err := r.startFile(m.name)
		if err != nil {
			r.fail(file, err)
			break
		}
		c := &fileChunks{r: r, file: file}
		if r.opts.Select != nil && !r.opts.Select(file) {
			r.fail(file, c.skip())
			continue
		}
		r.cur = r.newFile(file, c)
		return r.cur, nil
	}
	return nil, r.err
}

// fail records err, if any, as the end of the stream, and the file it
// concerns ("" if unknown).
func (r *Reader) fail(file string, err error) {
	if err != nil && r.err == nil {
		r.err, r.failedIn = err, file
	}
}

// FailedIn names the file whose member the reader was reading when the
// stream failed: the files before it ended cleanly. "" when nothing
// failed or the file is not known (a damaged tar header, say).
func (r *Reader) FailedIn() string { return r.failedIn }

// startFile checks the first member of a file: chunk 000 of a file not
// seen before, with a safe name, in the directory of a backed-up VM. On
// error the file is returned if the member names one.
func (r *Reader) startFile(member string) (string, error) {
	file, index, ok := parseChunk(member)
	switch {
	case !ok && strings.HasSuffix(member, ".hmac"):
		return "", fmt.Errorf("%w: %s without its chunk", ErrUnexpectedMember, member)
	case !ok:
		return "", fmt.Errorf("%w: %s is not a chunk (<file>.NNN)", ErrUnexpectedMember, member)
	case index != 0:
		return file, fmt.Errorf("%w: %s before %s (chunks out of order or missing)", ErrUnexpectedMember, member, chunkName(file, 0))
	}
	if err := checkFileName(file); err != nil {
		return "", err
	}
	if slices.Contains(r.seen, file) {
		return file, fmt.Errorf("%w: %s is stored twice", ErrUnexpectedMember, file)
	}
	owned := false
	for _, b := range r.held {
		owned = owned || b.owns(file)
	}
	if !owned {
		return file, fmt.Errorf("%w: %s belongs to no VM in the backup", ErrUnexpectedMember, file)
	}
	r.seen = append(r.seen, file)
	return file, nil
}

func (r *Reader) newFile(name string, c *fileChunks) *File {
	f := &File{Name: name, r: r, chunks: c}
	if r.header.Version == 2 {
		f.src = &volumeReader{r: r, c: c}
		return f
	}
	src, err := r.decode(&chunkReader{c: c}, name)
	if err != nil {
		f.err = err
		r.fail(name, err)
		return f
	}
	f.src = src
	if d, ok := src.(*decompressed); ok {
		f.closer = d
	}
	return f
}

func (f *File) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.src.Read(p)
	if err != nil {
		if err != io.EOF {
			err = fileError(f.Name, err)
			f.r.fail(f.Name, err)
		}
		f.err = err
		f.close()
	}
	if n > 0 || err == nil {
		return n, nil
	}
	return 0, f.err
}

// errSuperseded ends a File that Next or Close left behind.
var errSuperseded = errors.New("legacy: file read after Next or Close")

// close stops the decompressor, which may read on its own goroutine: it
// must be done before the Reader reads on.
func (f *File) close() {
	if f.closer != nil {
		f.closer.Close()
		f.closer = nil
	}
}
