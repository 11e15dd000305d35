package legacy

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"pedos.dev/backup/internal/archive"
)

// Member names of formats 2 and 3.
const (
	headerName     = "backup-header"
	headerHMACName = "backup-header.hmac"
	qubesXMLChunk  = "qubes.xml.000"
)

// Detect tells the format of the backup stream that br starts (spec §4.4):
// 4 or 3 as its backup-header says, 2 for a header without a version or for
// no header at all (the first member is qubes.xml.000). Nothing is
// authenticated yet: the reader for that version does it. Detect only
// peeks, so br still holds the whole stream; its buffer must hold the first
// members' headers and backup-header (bufio's default 4096 bytes do for
// archives made by the reference tools).
func Detect(br *bufio.Reader) (version int, err error) {
	var longName, paxPath string
	for off := 0; ; {
		h, err := peekAt(br, off, blockSize)
		if err == io.EOF {
			return 0, fmt.Errorf("%w: the input holds no tar member", ErrNotBackup)
		}
		if err != nil {
			return 0, err
		}
		if [blockSize]byte(h) == zeroBlock {
			off += blockSize
			continue
		}
		b, err := parseBlock(h, int64(off))
		if err != nil {
			return 0, err
		}
		off += blockSize
		data := func(limit int64) ([]byte, error) {
			if b.size > limit {
				return nil, fmt.Errorf("%w: %q has %d bytes of data (limit %d)", ErrCorrupt, b.name, b.size, limit)
			}
			return peekAt(br, off, int(b.size))
		}
		switch b.flag {
		case 'x', 'L':
			d, err := data(maxPaxSize)
			if err != nil {
				return 0, err
			}
			if b.flag == 'L' {
				longName = cString(d)
			} else if paxPath, _, err = parsePax(d); err != nil {
				return 0, err
			}
		case 'g', 'K', '5':
		case '0', 0:
			switch {
			case paxPath != "":
				b.name = paxPath
			case longName != "":
				b.name = longName
			}
			switch b.name {
			case qubesXMLChunk:
				return 2, nil // R2-beta3 wrote no header
			case headerName:
				d, err := data(archive.MaxHeaderSize)
				if err != nil {
					return 0, err
				}
				return headerVersion(d)
			}
			return 0, fmt.Errorf("%w: first member is %q, not backup-header", ErrNotBackup, b.name)
		default:
			return 0, fmt.Errorf("%w: first member %q has tar type %q", ErrNotBackup, b.name, b.flag)
		}
		off += int(padded(b.size))
	}
}

// headerVersion reads the version of an unauthenticated backup-header.
func headerVersion(data []byte) (int, error) {
	h, err := archive.ParseHeader(data)
	if err != nil {
		return 0, err
	}
	switch h.Version {
	case 0:
		return 2, nil // format 2 headers have no version line
	case 2, 3, 4:
		return h.Version, nil
	}
	return 0, fmt.Errorf("%w: backup-header says version %d", ErrUnsupported, h.Version)
}

// peekAt returns n bytes at off without consuming them; io.EOF if the
// stream ends exactly at off.
func peekAt(br *bufio.Reader, off, n int) ([]byte, error) {
	b, err := br.Peek(off + n)
	switch {
	case err == nil:
		return b[off:], nil
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("legacy.Detect: the archive's first members need a buffer of more than %d bytes", br.Size())
	case err == io.EOF && len(b) > off:
		return nil, fmt.Errorf("%w: stream ends inside the first member", ErrTruncated)
	}
	return nil, err
}
