package legacy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"pedos.dev/backup/internal/archive"
	"pedos.dev/backup/internal/elide"
)

// Member names of formats 2 and 3.
const (
	headerName     = "backup-header"
	headerHMACName = "backup-header.hmac"
	qubesXMLChunk  = "qubes.xml.000"
)

// Detect tells the format of the backup stream that br starts:
// 4 or 3 as its backup-header says, 2 for a header without a version or for
// no header at all (the first member is qubes.xml.000). Nothing is
// authenticated yet: the reader for that version does it. Detect only
// peeks, so br still holds the whole stream; its buffer must hold the first
// members' headers and backup-header (bufio's default 4096 bytes do for
// archives made by the reference tools).
func Detect(br *bufio.Reader) (version int, err error) {
	head, err := br.Peek(br.Size())
	if err != nil && err != io.EOF {
		return 0, err
	}
	full := len(head) == br.Size() // the stream may go on past what we see
	o := archive.NewOuterReader(bytes.NewReader(head))
	name, size, err := o.Next()
	switch {
	case err == io.EOF:
		return 0, fmt.Errorf("%w: the input holds no tar member", ErrNotBackup)
	case errors.Is(err, ErrTruncated) && full:
		return 0, fmt.Errorf("legacy.Detect: the archive's first members need a buffer of more than %d bytes", br.Size())
	case err != nil:
		return 0, err
	}
	switch name {
	case qubesXMLChunk:
		return 2, nil // R2-beta3 wrote no header
	case headerName:
		if size > archive.MaxHeaderSize {
			return 0, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrCorrupt, name, size, archive.MaxHeaderSize)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(o, data); err != nil {
			if full {
				return 0, fmt.Errorf("legacy.Detect: the archive's first members need a buffer of more than %d bytes", br.Size())
			}
			return 0, fmt.Errorf("%w: stream ends inside the first member", ErrTruncated)
		}
		return headerVersion(data)
	}
	return 0, fmt.Errorf("%w: first member is %s, not backup-header", ErrNotBackup, elide.Quote(name))
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
