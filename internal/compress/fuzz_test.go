package compress

import (
	"errors"
	"io"
	"testing"
)

// Compression-filter data comes from an archive that may be hostile: no
// input may make a built-in decoder panic or report success on garbage
// without producing it.
func FuzzBuiltinDecoders(f *testing.F) {
	sample := mixedData(3000, 1)
	for _, name := range []string{"gzip", "zstd"} {
		f.Add(compressWith(f, mustForWriting(f, name), sample))
		f.Add(compressWith(f, mustForWriting(f, name), nil))
	}
	f.Add([]byte("BZh9\x17rE8P\x90\x00\x00\x00\x00"))                      // empty bzip2 stream
	f.Add([]byte("\xfd7zXZ\x00\x00"))                                      // start of an xz header
	f.Add([]byte("]\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff\xff\xff\x00")) // lzma header
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, input []byte) {
		for _, name := range []string{"gzip", "bzip2", "xz", "lzma", "zstd"} {
			r, err := mustForReading(t, name, false).NewReader(&byteSource{b: input})
			if err != nil {
				t.Fatal(err)
			}
			// Bounded, since a tiny input may legitimately expand a lot.
			_, err = io.CopyN(io.Discard, r, 1<<20)
			r.Close()
			if len(input) == 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%s: empty input gave %v", name, err)
			}
		}
	})
}

// byteSource is a bytes.Reader without the io.ByteReader and io.WriterTo
// shortcuts, so that decoders take the path they take on a pipe.
type byteSource struct{ b []byte }

func (s *byteSource) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}
