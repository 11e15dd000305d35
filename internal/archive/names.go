package archive

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"pedos.dev/backup/internal/elide"
)

// Member names of format 4.
const (
	HeaderName     = "backup-header"
	HeaderHMACName = "backup-header.hmac"
	QubesXMLName   = "qubes.xml"
	// ManifestName is our completeness manifest (plain JSON) and
	// ManifestHMACName its authentication, always the last two members.
	ManifestName     = "pedos-manifest"
	ManifestHMACName = "pedos-manifest.hmac"
	// ChunkSize is the size the compressed stream of each file is cut at.
	ChunkSize = 100 << 20
	// maxKeyString is what `scrypt` reads of a passphrase line (2048-byte
	// buffer less line end and NUL): longer key strings would differ between
	// the tool and us.
	maxKeyString = 2046
)

// ChunkName is "<file>.NNN" with at least three digits, as Python's %03d.
func ChunkName(file string, index int) string { return fmt.Sprintf("%s.%03d", file, index) }

// ChunkKey is the passphrase string that binds a chunk to its backup and name.
func ChunkKey(backupID, chunkName string, pass []byte) []byte {
	return []byte(backupID + "!" + chunkName + "!" + string(pass))
}

// HeaderKey is the passphrase string that authenticates backup-header.
func HeaderKey(pass []byte) []byte { return []byte("backup-header!" + string(pass)) }

// ErrBadPassphraseText: a passphrase the scrypt tool would not read back
// the same way.
var ErrBadPassphraseText = errors.New("unusable passphrase")

// CheckPassphrase refuses passphrases that break interoperability with the
// scrypt tool: empty ones, control characters (a terminal line discipline
// acts on them, and the tool cuts at CR, LF and NUL), invalid UTF-8, and
// lengths that would push a chunk key string past what the tool reads.
func CheckPassphrase(pass []byte) error {
	switch {
	case len(pass) == 0:
		return fmt.Errorf("%w: it is empty", ErrBadPassphraseText)
	case !utf8.Valid(pass):
		return fmt.Errorf("%w: it is not valid UTF-8", ErrBadPassphraseText)
	case len(pass) > 1024:
		return fmt.Errorf("%w: it is longer than 1024 bytes", ErrBadPassphraseText)
	}
	for _, r := range string(pass) {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: it contains a control character (%U)", ErrBadPassphraseText, r)
		}
	}
	return nil
}

// CheckFileName accepts the names of stored files: relative slash-separated
// paths of printable ASCII with no empty, "." or ".." component, short
// enough for a ustar name and a scrypt key string. Both the writer (so it
// never produces what the reader refuses) and the reader use it.
func CheckFileName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: %s: empty or longer than 200 bytes", ErrUnsafeName, elide.Quote(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("%w: %s: byte 0x%02x not allowed", ErrUnsafeName, elide.Quote(name), c)
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("%w: %s: empty, '.' or '..' component", ErrUnsafeName, elide.Quote(name))
		}
	}
	return nil
}

var chunkMember = regexp.MustCompile(`^(.+)\.([0-9]{3,})\.enc$`)

// parseChunkMember splits "vm3/private.img.012.enc" into file and index. The
// index must be written exactly as the writer writes it (no extra zeros), so
// one chunk has one name.
func parseChunkMember(member string) (file string, index int, err error) {
	m := chunkMember.FindStringSubmatch(member)
	if m == nil {
		return "", 0, fmt.Errorf("%w: member %s is not a chunk (<file>.NNN.enc)", ErrUnexpectedMember, elide.Quote(member))
	}
	index, err = strconv.Atoi(m[2])
	if err != nil || ChunkName(m[1], index) != m[1]+"."+m[2] {
		return "", 0, fmt.Errorf("%w: member %s has a malformed chunk number", ErrUnexpectedMember, elide.Quote(member))
	}
	if err := CheckFileName(m[1]); err != nil {
		return "", 0, err
	}
	return m[1], index, nil
}
