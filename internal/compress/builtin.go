package compress

import (
	"compress/bzip2"
	"io"
	"runtime"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

const (
	// gzipLevel is gzip's own default, so our output is what `gzip` makes.
	gzipLevel = 6
	// zstdMaxWindow is what `zstd -d` accepts without --memory (window log
	// 27), which covers every level, --ultra included, of the `zstd` that the
	// reference system runs. It bounds what a hostile frame header can make
	// us allocate.
	zstdMaxWindow = 128 << 20
	// lzmaMaxDict bounds the dictionary of a .lzma stream. Its header has no
	// magic number nor checksum, so any 13 bytes read as one, and the
	// library's own limit of 2 GiB made a few bytes of garbage cost seconds
	// of allocation. `lzma -9` uses 64 MiB; we allow as much as for zstd.
	lzmaMaxDict = 128 << 20
)

func newZstdWriter(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w,
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		// Without a frame, empty input compresses to nothing, which
		// `zstd -d` rejects as truncated (and so do we).
		zstd.WithZeroFrames(true),
	)
}

func openBzip2(r io.Reader) (io.Reader, error) {
	// The standard library reads on past an end-of-stream marker into a
	// following stream, which is the whole of pbzip2's output format.
	return bzip2.NewReader(r), nil
}

func openXz(r io.Reader) (io.Reader, error) {
	// The default config reads concatenated streams and stream padding.
	// The library sets no upper bound on the dictionary (a block header may
	// ask for up to 4 GiB), but xz headers carry a CRC32, so unlike with
	// .lzma it takes a deliberately made stream, not garbage, to get one.
	return xz.NewReader(r)
}

func openLzma(r io.Reader) (io.Reader, error) {
	return lzma.ReaderConfig{DictCap: lzmaMaxDict}.NewReader(r)
}

func openZstd(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		return nil, err
	}
	// The decoder runs goroutines that only Close stops.
	return d.IOReadCloser(), nil
}

// lazy turns a decoder constructor into a NewReader that does no I/O: the
// stream header is read on the first Read, so its errors come from Read like
// any other corruption, and constructing a reader over a pipe that is only
// fed afterwards cannot deadlock.
func lazy(open func(io.Reader) (io.Reader, error)) func(io.Reader) (io.ReadCloser, error) {
	return func(r io.Reader) (io.ReadCloser, error) {
		return &lazyReader{src: &countingReader{r: r}, open: open}, nil
	}
}

type lazyReader struct {
	src  *countingReader
	open func(io.Reader) (io.Reader, error)
	dec  io.Reader
	err  error // sticky: decoders are not all safe to call after an error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.dec == nil {
		dec, err := l.open(l.src)
		if err != nil {
			// dec may be a typed nil pointer; keep it out of l.dec.
			l.err = l.truncated(noEOF(err))
			return 0, l.err
		}
		l.dec = dec
	}
	n, err := l.dec.Read(p)
	if err != nil {
		l.err = l.truncated(err)
	}
	return n, l.err
}

// truncated reports an empty source as io.ErrUnexpectedEOF. Every
// compressed format has a header, so no input at all is truncation, yet the
// zstd decoder calls it zero frames, and the lzma one has its own error.
func (l *lazyReader) truncated(err error) error {
	if _, ok := l.dec.(*parallelGzipReader); ok {
		// It reads the source on its own goroutine, so the count is not
		// ours to look at; it only exists once a member header was read,
		// and reports truncation itself.
		return err
	}
	if l.src.n == 0 && l.src.err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (l *lazyReader) Close() error {
	var err error
	if c, ok := l.dec.(io.Closer); ok {
		err = c.Close()
	}
	l.err = errClosed
	return err
}

// noEOF reports a stream that ended before its header was complete.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// countingReader tells whether the source was empty, as opposed to failing.
type countingReader struct {
	r   io.Reader
	n   int64
	err error // the last error from r
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// "none" is the identity filter. The archive writes compressed=False rather
// than naming it, but having it as a codec spares callers a special case.
type nopWriter struct{ io.Writer }

func (nopWriter) Close() error { return nil }

func newNopWriter(w io.Writer) (io.WriteCloser, error) { return nopWriter{w}, nil }

func newNopReader(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(r), nil }
