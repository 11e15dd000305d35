package legacy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// Every stored file F is a run of chunks F.000, F.001, … (Python's "%03d":
// F.1000 follows F.999), each followed by its F.NNN.hmac.

var chunkRE = regexp.MustCompile(`^(.+)\.([0-9]{3,})$`)

func chunkName(file string, index int) string { return fmt.Sprintf("%s.%03d", file, index) }

// parseChunk splits "vm3/private.img.012" into file and index. The number
// must be written as the writer writes it, so that one chunk has one name.
func parseChunk(member string) (file string, index int, ok bool) {
	m := chunkRE.FindStringSubmatch(member)
	if m == nil {
		return "", 0, false
	}
	index, err := strconv.Atoi(m[2])
	if err != nil || chunkName(m[1], index) != member {
		return "", 0, false
	}
	return m[1], index, true
}

// checkFileName accepts the names of stored files: relative, printable
// ASCII, no empty or ".." component, and "." only as the whole last one
// (a template's directory, stored as "vm7/." in formats 2 and 3).
func checkFileName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%w: file name %s is empty or too long", ErrUnexpectedMember, elide.Quote(name))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return fmt.Errorf("%w: file name %s has byte 0x%02x", ErrUnexpectedMember, elide.Quote(name), c)
		}
	}
	parts := strings.Split(name, "/")
	for i, part := range parts {
		if part == "" || part == ".." || (part == "." && (i == 0 || i < len(parts)-1)) {
			return fmt.Errorf("%w: unsafe file name %s", ErrUnexpectedMember, elide.Quote(name))
		}
	}
	return nil
}
