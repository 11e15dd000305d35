package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"pedos.dev/backup/internal/elide"
)

// The outer container is a concatenation of small tar archives, one per
// member, as the reference writer produces by running `tar -cO` per file.

const (
	blockSize  = 512
	recordSize = 10240 // GNU tar's default record (-b20): each member archive is padded to it
)

var zeroBlock [blockSize]byte

// memberHeader builds the ustar header block of a regular file. Names are
// put in the ustar name/prefix fields because tar2qfile, the reference
// reader inside a VM, ignores pax path records.
func memberHeader(name string, size int64, mtime time.Time) ([]byte, error) {
	h := make([]byte, blockSize)
	prefix, base := "", name
	if len(name) > 100 {
		i := strings.LastIndex(name[:min(len(name), 156)], "/")
		if i <= 0 || len(name)-i-1 > 100 {
			return nil, fmt.Errorf("%w: %q does not fit a ustar header", ErrUnsafeName, name)
		}
		prefix, base = name[:i], name[i+1:]
	}
	copy(h[0:100], base)
	copy(h[100:108], "0000644\x00")
	copy(h[108:116], "0000000\x00")
	copy(h[116:124], "0000000\x00")
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], fmt.Sprintf("%011o\x00", max(mtime.Unix(), 0)))
	h[156] = '0'
	copy(h[257:265], "ustar\x0000")
	copy(h[265:297], "root")
	copy(h[297:329], "root")
	copy(h[329:337], "0000000\x00")
	copy(h[337:345], "0000000\x00")
	copy(h[345:500], prefix)
	sum, _ := checksum(h)
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return h, nil
}

// ChecksumOK reports whether a tar header block's checksum field matches
// its content (as an unsigned or a signed byte sum, as tar accepts).
func ChecksumOK(h []byte) bool {
	u, s := checksum(h)
	want, err := parseOctal(h[148:156])
	return err == nil && (want == u || want == s)
}

// checksum sums the header with the checksum field counted as spaces.
func checksum(h []byte) (unsigned, signed int64) {
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return unsigned, signed
}

// memberArchiveSize is the bytes one member archive takes in the stream.
func memberArchiveSize(size int64) int64 {
	n := blockSize + padTo(size, blockSize) + 2*blockSize
	return padTo(n, recordSize)
}

func padTo(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// writeMember writes one complete member archive whose data is the
// concatenation of parts (which must add up to size).
func writeMember(w io.Writer, name string, mtime time.Time, parts ...[]byte) error {
	var size int64
	for _, p := range parts {
		size += int64(len(p))
	}
	hdr, err := memberHeader(name, size, mtime)
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	pad := memberArchiveSize(size) - blockSize - size
	for pad > 0 {
		n := min(pad, int64(len(zeroRecord)))
		if _, err := w.Write(zeroRecord[:n]); err != nil {
			return err
		}
		pad -= n
	}
	return nil
}

var zeroRecord = make([]byte, recordSize)

// OuterReader parses the outer stream block by block. Go's archive/tar
// stops at the first end-of-archive marker, which here ends only the first
// member, so this small parser skips zero blocks anywhere (like tar -i).
// Formats 2 and 3 share the container (package legacy reads them with it).
type OuterReader struct {
	r      io.Reader
	block  [blockSize]byte
	remain int64 // data bytes of the current member not yet read
	pad    int64 // padding after them
	offset int64 // bytes consumed, for error messages
}

// NewOuterReader reads the outer stream from r.
func NewOuterReader(r io.Reader) *OuterReader { return &OuterReader{r: r} }

// Offset is how many bytes of the stream have been consumed.
func (o *OuterReader) Offset() int64 { return o.offset }

// Limits on metadata blocks, so a hostile stream cannot make us buffer much.
const (
	maxPaxSize      = 64 << 10
	maxLongNameSize = 4096
)

func (o *OuterReader) readBlock() error {
	n, err := io.ReadFull(o.r, o.block[:])
	o.offset += int64(n)
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ends inside a tar block at offset %d", ErrTruncated, o.offset)
	}
	return err
}

// discarder is a reader that can skip bytes without reading them (a
// file, by seeking).
type discarder interface {
	Discard(n int64) (int64, error)
}

// skipRest discards what is left of the current member.
func (o *OuterReader) skipRest() error {
	var n int64
	var err error
	if d, ok := o.r.(discarder); ok {
		n, err = d.Discard(o.remain + o.pad)
	} else {
		n, err = io.CopyN(io.Discard, o.r, o.remain+o.pad)
	}
	o.offset += n
	o.remain, o.pad = 0, 0
	if err == io.EOF {
		return fmt.Errorf("%w: stream ends inside a member at offset %d", ErrTruncated, o.offset)
	}
	return err
}

// Read reads the current member's data.
func (o *OuterReader) Read(p []byte) (int, error) {
	if o.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > o.remain {
		p = p[:o.remain]
	}
	n, err := o.r.Read(p)
	o.remain -= int64(n)
	o.offset += int64(n)
	if err == io.EOF && o.remain > 0 {
		err = fmt.Errorf("%w: stream ends inside a member at offset %d", ErrTruncated, o.offset)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Next advances to the next regular file member and returns its name and
// size; io.EOF when the stream ends cleanly between members. Read then
// reads its data; what is left unread is skipped by the next call.
func (o *OuterReader) Next() (string, int64, error) {
	if err := o.skipRest(); err != nil {
		return "", 0, err
	}
	var longName, paxPath string
	paxSize := int64(-1)
	for {
		if err := o.readBlock(); err != nil {
			if err == io.EOF && (longName != "" || paxPath != "" || paxSize >= 0) {
				return "", 0, fmt.Errorf("%w: stream ends after an extended header", ErrTruncated)
			}
			return "", 0, err
		}
		if o.block == zeroBlock {
			continue // end of one member archive, or record padding
		}
		h := o.block[:]
		if !bytes.HasPrefix(h[257:], []byte("ustar")) {
			return "", 0, fmt.Errorf("%w: no tar header at offset %d", ErrNotBackup, o.offset-blockSize)
		}
		if !ChecksumOK(h) {
			return "", 0, fmt.Errorf("%w: tar header checksum mismatch at offset %d", ErrCorrupt, o.offset-blockSize)
		}
		size, err := parseOctal(h[124:136])
		if err != nil || size < 0 {
			return "", 0, fmt.Errorf("%w: bad size field at offset %d", ErrCorrupt, o.offset-blockSize)
		}
		if paxSize >= 0 && (h[156] == '0' || h[156] == 0) {
			size = paxSize // a pax size record applies to the file entry it precedes
		}
		o.remain, o.pad = size, padTo(size, blockSize)-size
		switch flag := h[156]; flag {
		case 'x', 'g':
			if size > maxPaxSize {
				return "", 0, fmt.Errorf("%w: pax header of %d bytes", ErrTooLarge, size)
			}
			recs, err := o.readAll()
			if err != nil {
				return "", 0, err
			}
			if flag == 'x' {
				if paxPath, paxSize, err = parsePax(recs); err != nil {
					return "", 0, err
				}
			}
		case 'L':
			if size > maxLongNameSize {
				return "", 0, fmt.Errorf("%w: GNU long name of %d bytes", ErrTooLarge, size)
			}
			b, err := o.readAll()
			if err != nil {
				return "", 0, err
			}
			longName = string(bytes.TrimRight(b, "\x00"))
		case 'K':
			if size > maxLongNameSize {
				return "", 0, fmt.Errorf("%w: GNU long link name of %d bytes", ErrTooLarge, size)
			}
			if _, err := o.readAll(); err != nil {
				return "", 0, err
			}
		case '5':
			// Directory entries carry no data; the reference writer never
			// emits them, but a hand-made archive may.
			longName, paxPath, paxSize = "", "", -1
			if err := o.skipRest(); err != nil {
				return "", 0, err
			}
		case '0', 0:
			name := cString(h[0:100])
			if bytes.Equal(h[257:263], []byte("ustar\x00")) {
				if prefix := cString(h[345:500]); prefix != "" {
					name = prefix + "/" + name
				}
			}
			switch {
			case paxPath != "":
				name = paxPath
			case longName != "":
				name = longName
			}
			return name, size, nil
		default:
			return "", 0, fmt.Errorf("%w: member %s of tar type %q", ErrUnexpectedMember, elide.Quote(cString(h[0:100])), flag)
		}
	}
}

func (o *OuterReader) readAll() ([]byte, error) {
	b := make([]byte, o.remain)
	if _, err := io.ReadFull(o, b); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = fmt.Errorf("%w: stream ends inside an extended header", ErrTruncated)
		}
		return nil, err
	}
	return b, o.skipRest()
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseOctal(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return 0, errors.New("base-256 numbers are not used by backup archives")
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

// parsePax reads "<len> key=value\n" records, keeping path and size.
func parsePax(b []byte) (path string, size int64, err error) {
	size = -1
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return "", 0, fmt.Errorf("%w: malformed pax record", ErrCorrupt)
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) || b[n-1] != '\n' {
			return "", 0, fmt.Errorf("%w: malformed pax record", ErrCorrupt)
		}
		key, value, ok := strings.Cut(string(b[sp+1:n-1]), "=")
		if !ok {
			return "", 0, fmt.Errorf("%w: malformed pax record", ErrCorrupt)
		}
		switch key {
		case "path":
			path = value
		case "size":
			// Above 2^62, rounding the size up to whole blocks would wrap
			// negative; no archive member comes near it.
			if size, err = strconv.ParseInt(value, 10, 64); err != nil || size < 0 || size > 1<<62 {
				return "", 0, fmt.Errorf("%w: bad pax size %s", ErrCorrupt, elide.Quote(value))
			}
		}
		b = b[n:]
	}
	return path, size, nil
}
