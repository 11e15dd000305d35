package archive

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// Header is the backup-header file: key=value lines describing the archive.
type Header struct {
	Version           int // 0 when the key is absent (format 2)
	Encrypted         bool
	Compressed        bool
	CompressionFilter string
	HMACAlgorithm     string
	CryptoAlgorithm   string
	BackupID          string
	// Manifest announces our completeness manifest, the last member. The
	// reference reader ignores unknown keys; ours then insists on finding it.
	Manifest bool
	// Base is the id of the backup an increment applies to (BaseKey); ""
	// for a full backup. The reference reader ignores the key.
	Base string
}

// ManifestKey and BaseKey are our extension keys in backup-header.
const (
	ManifestKey = "pedos-manifest"
	BaseKey     = "pedos-base"
)

// MaxHeaderSize follows from the reference reader's 4096-byte cap on the
// .hmac file, which in format 4 is the header plus 128 bytes.
const MaxHeaderSize = 4096 - 128

var knownHeaderKeys = map[string]bool{
	"version": true, "encrypted": true, "compressed": true, "compression-filter": true,
	"hmac-algorithm": true, "crypto-algorithm": true, "backup-id": true, ManifestKey: true, BaseKey: true,
}

var headerToken = regexp.MustCompile(`^[A-Za-z0-9-]*$`)

// ValidHeaderValue reports whether s may appear as a header key or value.
func ValidHeaderValue(s string) bool { return headerToken.MatchString(s) }

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// Marshal writes the header as the reference writer does (format 4 key
// order), plus our manifest and base keys when set.
func (h Header) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "version=%d\n", h.Version)
	fmt.Fprintf(&b, "encrypted=%s\n", pyBool(h.Encrypted))
	fmt.Fprintf(&b, "compressed=%s\n", pyBool(h.Compressed))
	if h.CompressionFilter != "" {
		fmt.Fprintf(&b, "compression-filter=%s\n", h.CompressionFilter)
	}
	if h.CryptoAlgorithm != "" {
		fmt.Fprintf(&b, "crypto-algorithm=%s\n", h.CryptoAlgorithm)
	}
	fmt.Fprintf(&b, "hmac-algorithm=%s\n", h.HMACAlgorithm)
	if h.BackupID != "" {
		fmt.Fprintf(&b, "backup-id=%s\n", h.BackupID)
	}
	if h.Manifest {
		fmt.Fprintf(&b, "%s=1\n", ManifestKey)
	}
	if h.Base != "" {
		fmt.Fprintf(&b, "%s=%s\n", BaseKey, h.Base)
	}
	return b.Bytes()
}

// ParseHeader applies the reference reader's strict rules: ASCII only, one
// '=' per line, keys and values in [A-Za-z0-9-], unknown keys ignored, a
// known key at most once, and the keys each version requires.
func ParseHeader(data []byte) (Header, error) {
	var h Header
	if len(data) > MaxHeaderSize {
		return h, fmt.Errorf("%w: backup-header is %d bytes (limit %d)", ErrCorrupt, len(data), MaxHeaderSize)
	}
	for i, c := range data {
		if c >= 0x80 {
			return h, fmt.Errorf("%w: backup-header has a non-ASCII byte at offset %d", ErrCorrupt, i)
		}
	}
	text := strings.TrimSuffix(string(data), "\n")
	seen := map[string]bool{}
	for n, line := range strings.Split(text, "\n") {
		bad := func(why string) (Header, error) {
			return Header{}, fmt.Errorf("%w: backup-header line %d: %s", ErrCorrupt, n+1, why)
		}
		if strings.Count(line, "=") != 1 {
			return bad("not a single key=value pair")
		}
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		if !ValidHeaderValue(key) {
			return bad("key has characters outside [A-Za-z0-9-]")
		}
		if !knownHeaderKeys[key] {
			continue // unknown keys are ignored, values unchecked, as the reference reader does
		}
		if !ValidHeaderValue(value) {
			return bad("value has characters outside [A-Za-z0-9-]")
		}
		var err error
		switch key {
		case "version":
			h.Version, err = strconv.Atoi(value)
			if err == nil && (h.Version < 1 || h.Version > 4) {
				err = fmt.Errorf("version %d out of range", h.Version)
			}
		case "encrypted":
			h.Encrypted = parseBool(value)
		case "compressed":
			h.Compressed = parseBool(value)
		case "compression-filter":
			h.CompressionFilter = value
		case "hmac-algorithm":
			h.HMACAlgorithm = strings.ToLower(value)
		case "crypto-algorithm":
			h.CryptoAlgorithm = strings.ToLower(value)
		case "backup-id", BaseKey:
			if value == "" || strings.HasPrefix(value, "-") {
				err = fmt.Errorf("invalid %s %s", key, elide.Quote(value))
			}
			if key == BaseKey {
				h.Base = value
			} else {
				h.BackupID = value
			}
		case ManifestKey:
			h.Manifest = parseBool(value)
		}
		if err != nil {
			return bad(err.Error())
		}
		if seen[key] {
			return bad("key " + key + " repeated")
		}
		seen[key] = true
	}
	required := []string{"encrypted", "compressed", "hmac-algorithm"}
	if seen["version"] {
		required = append(required, "version")
	}
	if h.Encrypted && h.Version < 4 {
		required = append(required, "crypto-algorithm")
	}
	if h.Compressed && h.Version >= 3 {
		required = append(required, "compression-filter")
	}
	if h.Version >= 4 {
		required = append(required, "backup-id")
	}
	for _, k := range required {
		if !seen[k] {
			return h, fmt.Errorf("%w: backup-header lacks the required key %q", ErrCorrupt, k)
		}
	}
	return h, nil
}

func parseBool(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes":
		return true
	}
	return false
}
