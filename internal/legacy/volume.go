package legacy

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"

	"pedos.dev/backup/internal/archive"
)

// Format 2 stores each file as a GNU multi-volume tar: every
// chunk is one volume, encrypted by its own `openssl enc` run (its own
// salt), or gzipped, or, briefly, both with `openssl enc -z` (zlib inside
// the encryption). Volumes after the first start with a GNU 'M'
// continuation header; dropping it and joining the volumes gives the
// ordinary tar that GNU tar -M would have read.

// v2 compression of chunks.
const (
	v2Gzip = "gzip"
	v2Zlib = "zlib"
)

// isZlib recognises a zlib header (RFC 1950): deflate, a window of at most
// 32 KiB, and a check value making the first two bytes a multiple of 31.
// A tar stream never starts so: its first byte is a name's.
func isZlib(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// openVolume decodes one verified format 2 chunk (in place) into its
// volume.
func (r *Reader) openVolume(data []byte, name string) (io.Reader, error) {
	if r.keyLen > 0 {
		var err error
		if data, err = decryptAll(r.opts.Passphrase, r.keyLen, data, name); err != nil {
			return nil, err
		}
	}
	src := bytes.NewReader(data)
	var zr io.Reader
	var err error
	switch r.header.Compression {
	case v2Gzip:
		zr, err = gzip.NewReader(src)
	case v2Zlib:
		zr, err = zlib.NewReader(src)
	default:
		return src, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return &wholeStream{r: zr, src: src, name: name}, nil
}

// wholeStream reads a decompressor that must use all of its chunk: data
// after the compressed stream would otherwise be silently ignored.
type wholeStream struct {
	r    io.Reader
	src  *bytes.Reader
	name string
}

func (w *wholeStream) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	switch {
	case err == io.EOF && w.src.Len() > 0:
		err = fmt.Errorf("%w: %s: %d bytes after the compressed data", ErrCorrupt, w.name, w.src.Len())
	case err != nil && err != io.EOF:
		err = fmt.Errorf("%w: %s: %v", ErrCorrupt, w.name, err)
	}
	return n, err
}

// volumeReader joins the volumes of one format 2 file.
type volumeReader struct {
	r     *Reader
	c     *fileChunks
	cur   io.Reader
	index int
}

func (v *volumeReader) Read(p []byte) (int, error) {
	for {
		if v.cur != nil {
			n, err := v.cur.Read(p)
			if err == io.EOF {
				v.cur, err = nil, nil
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		data, err := v.c.chunk()
		if err != nil {
			return 0, err
		}
		name := chunkName(v.c.file, v.index)
		vol, err := v.r.openVolume(data, name)
		if err != nil {
			return 0, err
		}
		if v.index > 0 {
			if vol, err = dropContinuation(vol, name); err != nil {
				return 0, err
			}
		}
		v.cur = vol
		v.index++
	}
}

// dropContinuation removes the GNU 'M' header that starts a volume in the
// middle of a member; a volume cut between members starts with an
// ordinary header and is kept whole.
func dropContinuation(vol io.Reader, name string) (io.Reader, error) {
	head := make([]byte, blockSize)
	n, err := io.ReadFull(vol, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	if n == blockSize && head[156] == 'M' {
		// GNU tar writes the continuation of a sparse member without
		// the ustar magic, so only the checksum can vouch for it.
		if !archive.ChecksumOK(head) {
			return nil, fmt.Errorf("%w: %s: continuation header checksum mismatch", ErrCorrupt, name)
		}
		return vol, nil
	}
	return io.MultiReader(bytes.NewReader(head[:n]), vol), nil
}
