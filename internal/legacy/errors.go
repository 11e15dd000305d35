package legacy

import (
	"errors"

	"pedos.dev/backup/internal/archive"
)

// Sentinel errors. Every error wraps one of them (or a decompressor's or the
// input's own error) and names the member or file concerned. The first five
// are package archive's, so that the restore engine treats a damaged
// archive alike whatever its format.
var (
	// ErrNotBackup: the input is not the tar stream of a backup.
	ErrNotBackup = archive.ErrNotBackup
	// ErrBadPassphrase: no HMAC algorithm makes backup-header.hmac (or,
	// without a header, qubes.xml.000.hmac) match under the passphrase.
	ErrBadPassphrase = archive.ErrBadPassphrase
	// ErrCorrupt: an HMAC mismatch, bad padding, a bad header or damaged
	// compressed data.
	ErrCorrupt = archive.ErrCorrupt
	// ErrTruncated: the stream ends inside a member, or a chunk's .hmac is
	// missing at the end.
	ErrTruncated = archive.ErrTruncated
	// ErrUnexpectedMember: a chunk out of order, a member that belongs to no
	// backed-up VM, or an unsafe name.
	ErrUnexpectedMember = archive.ErrUnexpectedMember
	// ErrUnsupported: a valid backup this reader cannot read: format 4
	// (package archive's), an unknown cipher or digest.
	ErrUnsupported = errors.New("unsupported legacy backup feature")
)
