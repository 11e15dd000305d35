package legacy

import (
	"fmt"
	"io"
)

// Chunks and their .hmac members come in pairs; the chunk is buffered
// until its HMAC proves it, so nothing of a forged chunk is ever used.

// maxChunkSize admits the reference writers' chunks: 100 MiB in format 3,
// a gzipped or encrypted 100000 KiB volume in format 2.
const maxChunkSize = 100<<20 + 1<<20

// maxQubesXMLChunk is the reference reader's limit on qubes.xml.000.
const maxQubesXMLChunk = 1 << 20

type member struct {
	name string
	size int64
}

// peek returns the next member without reading its data; io.EOF at the
// clean end of the stream.
func (r *Reader) peek() (*member, error) {
	if r.pending == nil {
		name, size, err := r.outer.Next()
		if err != nil {
			return nil, err
		}
		r.pending = &member{name, size}
	}
	return r.pending, nil
}

// readMember reads the data of the pending member m.
func (r *Reader) readMember(m *member, limit int64, buf []byte) ([]byte, error) {
	r.pending = nil
	if m.size > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrCorrupt, m.name, m.size, limit)
	}
	if int64(cap(buf)) < m.size {
		buf = make([]byte, m.size)
	}
	buf = buf[:m.size]
	if _, err := io.ReadFull(r.outer, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readHMAC reads the .hmac member that must follow the member called name.
func (r *Reader) readHMAC(name string) ([]byte, error) {
	want := name + ".hmac"
	m, err := r.peek()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the stream ends after %s, without %s", ErrTruncated, name, want)
	}
	if err != nil {
		return nil, err
	}
	if m.name != want {
		return nil, fmt.Errorf("%w: %s follows %s, where %s belongs", ErrUnexpectedMember, m.name, name, want)
	}
	text, err := r.readMember(m, maxHMACSize, nil)
	if err != nil {
		return nil, err
	}
	return parseHMAC(want, text)
}

// readChunk reads the pending chunk m and its .hmac and returns the chunk,
// verified. The buffer is the Reader's: valid until the next chunk.
func (r *Reader) readChunk(m *member) ([]byte, error) {
	data, err := r.readMember(m, maxChunkSize, r.buf)
	if err != nil {
		return nil, err
	}
	r.buf = data
	mac, err := r.readHMAC(m.name)
	if err != nil {
		return nil, err
	}
	if !r.dig.verify(r.opts.Passphrase, data, mac) {
		return nil, fmt.Errorf("%w: %s: HMAC mismatch (the chunk was altered or damaged)", ErrCorrupt, m.name)
	}
	return data, nil
}

// skipChunk reads past the pending chunk m and its .hmac unverified: the
// caller does not want the file.
func (r *Reader) skipChunk(m *member) error {
	r.pending = nil
	if _, err := io.Copy(io.Discard, r.outer); err != nil {
		return err
	}
	_, err := r.readHMAC(m.name)
	return err
}

// fileChunks walks the chunks of one file, which must follow each other
// numbered from 000; the file ends at the first member of another file.
type fileChunks struct {
	r    *Reader
	file string
	next int
	done bool
}

// nextChunk returns the pending member that is the file's next
// chunk, or io.EOF after its last one.
func (c *fileChunks) nextChunk() (*member, error) {
	if c.done {
		return nil, io.EOF
	}
	m, err := c.r.peek()
	if err == io.EOF {
		c.done = true
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	file, index, ok := parseChunk(m.name)
	if !ok || file != c.file {
		c.done = true
		return nil, io.EOF
	}
	if index != c.next {
		return nil, fmt.Errorf("%w: %s where %s belongs (chunks out of order or missing)", ErrUnexpectedMember, m.name, chunkName(c.file, c.next))
	}
	c.next++
	return m, nil
}

// chunk returns the file's next chunk, verified, or io.EOF.
func (c *fileChunks) chunk() ([]byte, error) {
	m, err := c.nextChunk()
	if err != nil {
		return nil, err
	}
	return c.r.readChunk(m)
}

// skip reads past the file's remaining chunks.
func (c *fileChunks) skip() error {
	for {
		m, err := c.nextChunk()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := c.r.skipChunk(m); err != nil {
			return err
		}
	}
}

// chunkReader is the concatenation of a file's verified chunks (format 3
// cuts one stream into them).
type chunkReader struct {
	c   *fileChunks
	cur []byte
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	for len(cr.cur) == 0 {
		b, err := cr.c.chunk()
		if err != nil {
			return 0, err
		}
		cr.cur = b
	}
	n := copy(p, cr.cur)
	cr.cur = cr.cur[n:]
	return n, nil
}
