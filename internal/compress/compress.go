package compress

import (
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Codec compresses and decompresses one stream with one filter.
type Codec interface {
	// Name is the filter's name as written in the backup header, e.g. "gzip".
	Name() string
	// NewWriter returns a writer that compresses to w. Close flushes
	// everything to w (for an external program: closes its input and waits
	// for it, reporting a failure together with its stderr text). Close does
	// not close w.
	NewWriter(w io.Writer) (io.WriteCloser, error)
	// NewReader returns a reader of the data decompressed from r. It never
	// blocks on r, which may be a pipe that is filled only afterwards.
	// Built-in decoders report truncated input as io.ErrUnexpectedEOF and
	// corrupt input as another error, never as a clean EOF; only "none", and
	// a cut falling exactly between concatenated streams, go unnoticed.
	// Close releases resources (for an external program: stops it if the
	// stream was not read to the end, and waits for it). Close must not run
	// concurrently with Read, and does not close r.
	NewReader(r io.Reader) (io.ReadCloser, error)
}

var (
	// ErrUnknownFilter means a name read from an archive has no built-in
	// decoder, and running the program an untrusted archive names was not
	// allowed.
	ErrUnknownFilter = errors.New("compress: unknown compression filter")
	// ErrFilterNotFound means the program for an external filter is not
	// installed.
	ErrFilterNotFound = errors.New("compress: compression filter program not found")
	// ErrInvalidName means a name does not match ^[A-Za-z0-9-]+$, the
	// charset of a header value.
	ErrInvalidName = errors.New("compress: invalid compression filter name")

	errClosed = errors.New("compress: read or write after Close")
)

// validName is the charset the backup header allows for the value; it also
// keeps names from smuggling in arguments, paths or shell syntax.
var validName = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// encoders are the filters we compress with in Go. bzip2 and xz are left to
// the system programs: the Go writers for those formats are much slower.
var encoders = map[string]func(io.Writer) (io.WriteCloser, error){
	"gzip": newGzipWriter,
	"zstd": newZstdWriter,
	"none": newNopWriter,
}

// decoders are the filters we decompress in Go, with the aliases the
// reference system may have written: the parallel tools produce the same
// format as their serial counterparts.
var decoders = map[string]func(io.Reader) (io.ReadCloser, error){
	"gzip":   lazy(openGzip),
	"pigz":   lazy(openGzip),
	"bzip2":  lazy(openBzip2),
	"pbzip2": lazy(openBzip2),
	"xz":     lazy(openXz),
	"lzma":   lazy(openLzma),
	"zstd":   lazy(openZstd),
	"zstdmt": lazy(openZstd),
	"none":   newNopReader,
}

// ForWriting returns the codec that compresses with the named filter. gzip
// and zstd are built in, and "none" is the identity; any other name is run
// as a program on PATH with no arguments, which must exist now, before
// anything is written. The codec's reader is the one ForReading would give.
func ForWriting(name string) (Codec, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	c := &codec{name: name, newWriter: encoders[name], newReader: decoders[name]}
	if c.newWriter == nil {
		prog, err := findProgram(name)
		if err != nil {
			return nil, err
		}
		c.newWriter = prog.newWriter
		if c.newReader == nil {
			c.newReader = prog.newReader
		}
	}
	return c, nil
}

// ForReading returns the codec that decompresses a stream whose filter name
// came from an untrusted archive header. Only built-in decoders are used,
// unless allowExternal says the user named this filter on the command line:
// then an unknown name runs "NAME -d" from PATH.
func ForReading(name string, allowExternal bool) (Codec, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	if dec := decoders[name]; dec != nil {
		enc := encoders[name]
		if enc == nil {
			// Writing is not what this codec is for; look the program up
			// only if someone does write with it.
			enc = func(w io.Writer) (io.WriteCloser, error) {
				prog, err := findProgram(name)
				if err != nil {
					return nil, err
				}
				return prog.newWriter(w)
			}
		}
		return &codec{name: name, newWriter: enc, newReader: dec}, nil
	}
	if !allowExternal {
		return nil, fmt.Errorf("%w %q: it has no built-in decoder, and running a program named by the archive is not done unless you ask for it with --compression-filter %s",
			ErrUnknownFilter, name, name)
	}
	prog, err := findProgram(name)
	if err != nil {
		return nil, err
	}
	return &codec{name: name, newWriter: prog.newWriter, newReader: prog.newReader}, nil
}

type codec struct {
	name      string
	newWriter func(io.Writer) (io.WriteCloser, error)
	newReader func(io.Reader) (io.ReadCloser, error)
}

func (c *codec) Name() string                                  { return c.name }
func (c *codec) NewWriter(w io.Writer) (io.WriteCloser, error) { return c.newWriter(w) }
func (c *codec) NewReader(r io.Reader) (io.ReadCloser, error)  { return c.newReader(r) }
