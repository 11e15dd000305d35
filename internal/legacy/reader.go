package legacy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/compress"
	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/sparsetar"
)

// Options configure NewReader.
type Options struct {
	Passphrase []byte
	// ForceFilter is a decompression program the user named
	// (--compression-filter): it replaces a format 3 header's filter and
	// may be run if it has no built-in decoder. Without it only the
	// built-in decoders are used; a program named by the untrusted header
	// is never run. Format 2's gzip and zlib are always built in.
	ForceFilter string
	// Select chooses the files Next returns; the others are read past
	// without HMAC checks (nothing of them is used). nil selects all.
	Select func(name string) bool
}

// Header describes a format 2 or 3 archive.
type Header struct {
	Version               int // 2 or 3
	Encrypted, Compressed bool
	// Compression is format 3's compression-filter, or format 2's "gzip"
	// or "zlib" (openssl enc -z); "" when not compressed.
	Compression     string
	HMACAlgorithm   string // as OpenSSL names it, lower case: "sha512"
	CryptoAlgorithm string // "aes-256-cbc"; "" when not encrypted
	// NoHeader: an R2-beta3 archive without backup-header, whose other
	// fields were inferred from qubes.xml.000.
	NoHeader bool
}

// maxQubesXML bounds the unpacked qubes.xml.
const maxQubesXML = archive.MaxQubesXML

// Reader reads a format 2 or 3 archive from a stream, once, front to back,
// one chunk at a time: it holds one chunk (up to 100 MiB) in memory. It is
// not safe for concurrent use.
type Reader struct {
	opts     Options
	outer    *archive.OuterReader
	pending  *member // the next member, its data not yet read
	header   Header
	dig      digest
	keyLen   int            // 0: not encrypted
	codec    compress.Codec // format 3 compression
	orig     []byte
	xml      []byte
	held     []backedUp
	buf      []byte // the chunk buffer
	cur      *File
	seen     []string
	err      error  // sticky: the stream is not to be trusted past it
	failedIn string // the file err concerns
}

// NewReader authenticates the header (ErrBadPassphrase when no HMAC
// matches under the passphrase) and reads qubes.xml.
func NewReader(in io.Reader, opts Options) (*Reader, error) {
	r := &Reader{opts: opts, outer: archive.NewOuterReader(in)}
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	if err := r.readQubesXML(); err != nil {
		return nil, err
	}
	return r, nil
}

// Header returns the archive's header.
func (r *Reader) Header() Header { return r.header }

// QubesXML returns the backup's database converted to the R4 schema, with
// the backup-content, backup-path and backup-size features of format 4.
func (r *Reader) QubesXML() []byte { return r.xml }

// OriginalXML returns the core2 qubes.xml as stored.
func (r *Reader) OriginalXML() []byte { return r.orig }

// Seen lists the files met so far, selected or not.
func (r *Reader) Seen() []string { return slices.Clone(r.seen) }

// Close stops reading. It does not close the input.
func (r *Reader) Close() error {
	if r.cur != nil {
		r.cur.close()
		if r.cur.err == nil {
			r.cur.err = errSuperseded
		}
		r.cur = nil
	}
	if r.err == nil {
		r.err = errors.New("legacy: reader closed")
	}
	return nil
}

func (r *Reader) readHeader() error {
	m, err := r.peek()
	if err == io.EOF {
		return fmt.Errorf("%w: the input is empty", ErrNotBackup)
	}
	if err != nil {
		return err
	}
	switch m.name {
	case qubesXMLChunk:
		r.header = Header{Version: 2, NoHeader: true}
		return nil // settled by qubes.xml.000
	case headerName:
	default:
		return fmt.Errorf("%w: first member is %s, not backup-header", ErrNotBackup, elide.Quote(m.name))
	}
	data, err := r.readMember(m, archive.MaxHeaderSize, nil)
	if err != nil {
		return err
	}
	mac, err := r.readHMAC(headerName)
	if err != nil {
		return err
	}
	// Like the reference reader, accept whichever digest matches: the
	// algorithm is only known from the header once it is proven.
	if _, ok := findDigest(r.opts.Passphrase, data, mac); !ok {
		return ErrBadPassphrase
	}
	h, err := archive.ParseHeader(data)
	if err != nil {
		return err
	}
	switch h.Version {
	case 0, 2:
		r.header.Version = 2
	case 3:
		r.header.Version = 3
	case 4:
		return fmt.Errorf("%w: a format 4 header authenticated by an OpenSSL HMAC", ErrCorrupt)
	default:
		return fmt.Errorf("%w: format %d", ErrUnsupported, h.Version)
	}
	if r.dig, err = digestByName(h.HMACAlgorithm); err != nil {
		return err
	}
	r.header.HMACAlgorithm = r.dig.name
	r.header.Encrypted, r.header.Compressed = h.Encrypted, h.Compressed
	if h.Encrypted {
		if r.keyLen, err = cipherKeyLen(h.CryptoAlgorithm); err != nil {
			return err
		}
		r.header.CryptoAlgorithm = h.CryptoAlgorithm
	}
	switch {
	case !h.Compressed:
	case r.header.Version == 2 && h.Encrypted:
		r.header.Compression = v2Zlib
	case r.header.Version == 2:
		r.header.Compression = v2Gzip
	default:
		filter, forced := h.CompressionFilter, r.opts.ForceFilter != ""
		if forced {
			filter = r.opts.ForceFilter
		}
		if r.codec, err = compress.ForReading(filter, forced); err != nil {
			return err
		}
		r.header.Compression = filter
	}
	return nil
}

// readQubesXML reads qubes.xml.000, which must come next, and converts it.
func (r *Reader) readQubesXML() error {
	m, err := r.peek()
	if err == io.EOF {
		return fmt.Errorf("%w: the stream ends before %s", ErrTruncated, qubesXMLChunk)
	}
	if err != nil {
		return err
	}
	if m.name != qubesXMLChunk {
		return fmt.Errorf("%w: found %s where %s belongs", ErrUnexpectedMember, elide.Quote(m.name), qubesXMLChunk)
	}
	data, err := r.readMember(m, maxQubesXMLChunk, nil)
	if err != nil {
		return err
	}
	mac, err := r.readHMAC(qubesXMLChunk)
	if err != nil {
		return err
	}
	if r.header.NoHeader {
		if err := r.inferFormat(data, mac); err != nil {
			return err
		}
	} else if !r.dig.verify(r.opts.Passphrase, data, mac) {
		return fmt.Errorf("%w: %s: HMAC mismatch (the chunk was altered or damaged)", ErrCorrupt, qubesXMLChunk)
	}
	var src io.Reader
	if r.header.Version == 2 {
		src, err = r.openVolume(data, qubesXMLChunk)
		if err != nil {
			return err
		}
	} else {
		src, err = r.decode(bytes.NewReader(data), "qubes.xml")
		if err != nil {
			return err
		}
		if d, ok := src.(*decompressed); ok {
			defer d.Close()
		}
	}
	var xml bytes.Buffer
	if _, err := sparsetar.ExtractFile(src, "qubes.xml", &xml, maxQubesXML); err != nil {
		return fileError("qubes.xml", err)
	}
	r.orig = xml.Bytes()
	db, err := parseCore2(r.orig)
	if err != nil {
		return err
	}
	r.xml, r.held, err = convert(db, includeStored)
	return err
}

// inferFormat settles what an archive without a header does:
// the HMAC algorithm is the one that authenticates qubes.xml.000 (so a
// wrong passphrase shows here), a chunk starting with "Salted__" is
// encrypted, gzip's magic means gzip, and zlib data inside the encryption
// means `openssl enc -z`.
func (r *Reader) inferFormat(data, mac []byte) error {
	var ok bool
	if r.dig, ok = findDigest(r.opts.Passphrase, data, mac); !ok {
		return fmt.Errorf("%w (this archive has no header, so %s.hmac may also be damaged)", ErrBadPassphrase, qubesXMLChunk)
	}
	r.header.HMACAlgorithm = r.dig.name
	switch {
	case bytes.HasPrefix(data, []byte(saltMagic)):
		r.header.Encrypted, r.header.CryptoAlgorithm, r.keyLen = true, "aes-256-cbc", 32
		plain, err := decryptAll(r.opts.Passphrase, r.keyLen, bytes.Clone(data), qubesXMLChunk)
		if err != nil {
			return err
		}
		if isZlib(plain) {
			r.header.Compressed, r.header.Compression = true, v2Zlib
		}
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		r.header.Compressed, r.header.Compression = true, v2Gzip
	}
	return nil
}

// decode returns the format 3 pipeline over a file's stored stream:
// decryption, then decompression.
func (r *Reader) decode(stored io.Reader, name string) (io.Reader, error) {
	plain := stored
	if r.keyLen > 0 {
		plain = &cbcReader{src: stored, pass: r.opts.Passphrase, keyLen: r.keyLen, name: name}
	}
	if r.codec == nil {
		return plain, nil
	}
	zr, err := r.codec.NewReader(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return &decompressed{zr: zr, plain: plain, name: name}, nil
}

// decompressed checks that a decompressor used its whole input: data
// after the end of the compressed stream would otherwise go unnoticed.
type decompressed struct {
	zr    io.ReadCloser
	plain io.Reader
	name  string
}

func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.zr.Read(p)
	if err == io.EOF {
		if rest, rerr := io.Copy(io.Discard, d.plain); rerr != nil {
			err = rerr
		} else if rest > 0 {
			err = fmt.Errorf("%w: %s: %d bytes after the end of the compressed stream", ErrCorrupt, d.name, rest)
		}
	}
	return n, err
}

func (d *decompressed) Close() error { return d.zr.Close() }

// fileError names the file in a failure, and calls what is not already
// one of this package's errors corruption, or truncation when a decoder
// ran out of data.
func fileError(name string, err error) error {
	for _, known := range []error{ErrCorrupt, ErrTruncated, ErrUnexpectedMember, ErrBadPassphrase, ErrUnsupported} {
		if errors.Is(err, known) {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s ends early (chunks missing at its end?): %v", ErrTruncated, name, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
}
