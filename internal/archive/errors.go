package archive

import "errors"

// Sentinel errors; every error returned wraps one of them (or one of
// scryptenc's) and names the member or file it concerns.
var (
	// ErrNotBackup: the input is not a tar stream of a backup.
	ErrNotBackup = errors.New("not a backup archive")
	// ErrUnsupportedVersion: a backup of a format this reader does not handle.
	ErrUnsupportedVersion = errors.New("unsupported backup format version")
	// ErrBadPassphrase: the passphrase does not open backup-header.hmac.
	ErrBadPassphrase = errors.New("wrong passphrase (or the backup header is damaged)")
	// ErrChunkMismatch: a chunk does not open under the key bound to its
	// name and this backup's id: it was altered, renamed, moved or taken
	// from another backup.
	ErrChunkMismatch = errors.New("chunk does not belong at this place in this backup (altered, renamed or from another backup)")
	// ErrCorrupt: damaged data (failed HMAC, bad checksum, bad structure).
	ErrCorrupt = errors.New("backup data is corrupt")
	// ErrTruncated: the stream ends in the middle of a member.
	ErrTruncated = errors.New("backup archive is truncated")
	// ErrIncomplete: files or chunks are missing.
	ErrIncomplete = errors.New("backup archive is incomplete")
	// ErrUnexpectedMember: a member that should not be there, or out of order.
	ErrUnexpectedMember = errors.New("unexpected member in backup archive")
	// ErrUnsafeName: a member name that could escape or confuse extraction.
	ErrUnsafeName = errors.New("unsafe name in backup archive")
	// ErrTooLarge: a member exceeds the size this reader accepts.
	ErrTooLarge = errors.New("member exceeds its size limit")
)
