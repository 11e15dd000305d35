package legacy

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The outer container is many small tar archives, one per member, one
// after the other (spec §1.1): zero blocks between them are skipped as
// `tar -i` does, and only regular members count.

const blockSize = 512

var zeroBlock [blockSize]byte

// Limits on metadata blocks, so a hostile stream cannot make us buffer much.
const (
	maxPaxSize      = 64 << 10
	maxLongNameSize = 4096
)

// block is one parsed tar header block.
type block struct {
	name string
	size int64
	flag byte
}

// parseBlock checks a non-zero header block and returns its fields. The
// ustar prefix counts only with the POSIX magic; GNU headers keep other
// fields there.
func parseBlock(h []byte, offset int64) (block, error) {
	if !bytes.HasPrefix(h[257:], []byte("ustar")) {
		return block{}, fmt.Errorf("%w: no tar header at offset %d", ErrNotBackup, offset)
	}
	if !checksumOK(h) {
		return block{}, fmt.Errorf("%w: tar header checksum mismatch at offset %d", ErrCorrupt, offset)
	}
	size, err := parseOctal(h[124:136])
	if err != nil || size < 0 {
		return block{}, fmt.Errorf("%w: bad size field at offset %d", ErrCorrupt, offset)
	}
	name := cString(h[0:100])
	if bytes.Equal(h[257:263], []byte("ustar\x00")) {
		if prefix := cString(h[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	return block{name: name, size: size, flag: h[156]}, nil
}

// checksumOK checks a header block's checksum, which tar writers compute
// over unsigned or (old ones) signed bytes, the field counted as spaces.
func checksumOK(h []byte) bool {
	want, err := parseOctal(h[148:156])
	var unsigned, signed int64
	for i, c := range h[:blockSize] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return err == nil && (want == unsigned || want == signed)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func parseOctal(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		return 0, fmt.Errorf("base-256 numbers are not used by backup archives")
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

func padded(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// outerReader walks the outer stream member by member; Read reads the
// current member's data.
type outerReader struct {
	r      io.Reader
	buf    [blockSize]byte
	remain int64 // data bytes of the current member not yet read
	pad    int64 // padding after them
	offset int64 // bytes consumed, for error messages
}

func (o *outerReader) readBlock() error {
	n, err := io.ReadFull(o.r, o.buf[:])
	o.offset += int64(n)
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: stream ends inside a tar block at offset %d", ErrTruncated, o.offset)
	}
	return err
}

func (o *outerReader) skipRest() error {
	n, err := io.CopyN(io.Discard, o.r, o.remain+o.pad)
	o.offset += n
	o.remain, o.pad = 0, 0
	if err == io.EOF {
		return fmt.Errorf("%w: stream ends inside a member at offset %d", ErrTruncated, o.offset)
	}
	return err
}

func (o *outerReader) Read(p []byte) (int, error) {
	if o.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > o.remain {
		p = p[:o.remain]
	}
	n, err := o.r.Read(p)
	o.remain -= int64(n)
	o.offset += int64(n)
	switch {
	case err == io.EOF && o.remain > 0:
		err = fmt.Errorf("%w: stream ends inside a member at offset %d", ErrTruncated, o.offset)
	case err == io.EOF:
		err = nil
	}
	return n, err
}

// next skips what is left of the current member and returns the name and
// size of the next regular one; io.EOF when the stream ends between
// members. pax `path`/`size` records and GNU long names apply to the
// member they precede; directories are skipped; other types are refused.
func (o *outerReader) next() (string, int64, error) {
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
		if o.buf == zeroBlock {
			continue
		}
		b, err := parseBlock(o.buf[:], o.offset-blockSize)
		if err != nil {
			return "", 0, err
		}
		if paxSize >= 0 && (b.flag == '0' || b.flag == 0) {
			b.size = paxSize
		}
		o.remain, o.pad = b.size, padded(b.size)-b.size
		switch b.flag {
		case 'x', 'g':
			data, err := o.readAll(maxPaxSize, "pax header")
			if err != nil {
				return "", 0, err
			}
			if b.flag == 'x' {
				if paxPath, paxSize, err = parsePax(data); err != nil {
					return "", 0, err
				}
			}
		case 'L':
			data, err := o.readAll(maxLongNameSize, "GNU long name")
			if err != nil {
				return "", 0, err
			}
			longName = cString(data)
		case 'K':
			if _, err := o.readAll(maxLongNameSize, "GNU long link name"); err != nil {
				return "", 0, err
			}
		case '5':
			longName, paxPath, paxSize = "", "", -1
			if err := o.skipRest(); err != nil {
				return "", 0, err
			}
		case '0', 0:
			switch {
			case paxPath != "":
				b.name = paxPath
			case longName != "":
				b.name = longName
			}
			return b.name, b.size, nil
		default:
			return "", 0, fmt.Errorf("%w: member %q of tar type %q", ErrUnexpectedMember, b.name, b.flag)
		}
	}
}

// readAll reads the current member's data, which must not exceed limit.
func (o *outerReader) readAll(limit int64, what string) ([]byte, error) {
	if o.remain > limit {
		return nil, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrCorrupt, what, o.remain, limit)
	}
	b := make([]byte, o.remain)
	if _, err := io.ReadFull(o, b); err != nil {
		return nil, err
	}
	return b, o.skipRest()
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
			if size, err = strconv.ParseInt(value, 10, 64); err != nil || size < 0 {
				return "", 0, fmt.Errorf("%w: bad pax size %q", ErrCorrupt, value)
			}
		}
		b = b[n:]
	}
	return path, size, nil
}
