package archive

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"pedos.dev/backup/internal/elide"
	"pedos.dev/backup/internal/scryptenc"
)

const manifestFormat = "pedos-manifest"

// Manifest is our completeness record, the last two members of every
// archive we write. The reference format cannot show that a VM, a file or
// trailing chunks are missing (Qubes issue #3498); the manifest lists every
// file with each chunk's size and scrypt trailer (the HMAC over that
// chunk). It is plain JSON, since everything in it can be read off the
// outer tar anyway, followed by pedos-manifest.hmac: an HMAC-SHA256 under a
// key derived from the one that authenticates backup-header, so it costs
// no key derivation of its own. backup-header announces it, so removing it
// is detected too.
type Manifest struct {
	Format   string         `json:"format"`
	Version  int            `json:"version"`
	BackupID string         `json:"backup-id"`
	Files    []ManifestFile `json:"files"`
}

// ManifestFile is one stored file in archive order.
type ManifestFile struct {
	Name   string          `json:"name"`
	Chunks []ManifestChunk `json:"chunks"`
}

// ManifestChunk identifies one chunk: the size of its .enc member and the
// hex scrypt trailer, which fixes its content exactly.
type ManifestChunk struct {
	Size int64  `json:"size"`
	HMAC string `json:"hmac"`
}

// manifestTag is the content of pedos-manifest.hmac: the hex HMAC of the
// manifest bytes under a key bound to this archive's header key and id.
func manifestTag(headerKey *scryptenc.Key, backupID string, data []byte) []byte {
	m := hmac.New(sha256.New, headerKey.Subkey("pedos-manifest\x00"+backupID))
	m.Write(data)
	return []byte(hex.EncodeToString(m.Sum(nil)) + "\n")
}

func manifestTagValid(headerKey *scryptenc.Key, backupID string, data, tag []byte) bool {
	return hmac.Equal(manifestTag(headerKey, backupID, data), tag)
}

func (m *Manifest) add(file string, size int64, trailer []byte) {
	if n := len(m.Files); n == 0 || m.Files[n-1].Name != file {
		m.Files = append(m.Files, ManifestFile{Name: file})
	}
	f := &m.Files[len(m.Files)-1]
	f.Chunks = append(f.Chunks, ManifestChunk{Size: size, HMAC: hex.EncodeToString(trailer)})
}

// maxManifest bounds the decompressed manifest: about 117 bytes a chunk,
// so some 570,000 chunks or 55 TiB of compressed data.
const maxManifest = 64 << 20

func (m *Manifest) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", " ")
	if err == nil && len(b) > maxManifest {
		err = fmt.Errorf("%w: the manifest would be %d bytes (limit %d): split the backup", ErrTooLarge, len(b), maxManifest)
	}
	return b, err
}

// manifestVersion is 1 for a full backup, 2 for an increment (one whose
// header names a base): a reader that knows only version 1 refuses an
// increment instead of restoring its deltas as volumes.
func manifestVersion(base string) int {
	if base != "" {
		return 2
	}
	return 1
}

func parseManifest(data []byte, h Header) (*Manifest, error) {
	backupID := h.BackupID
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if m.Format != manifestFormat || m.Version != manifestVersion(h.Base) {
		return nil, fmt.Errorf("%w: manifest format %s version %d", ErrUnsupportedVersion, elide.Quote(m.Format), m.Version)
	}
	if m.BackupID != backupID {
		return nil, fmt.Errorf("%w: manifest is for backup %s", ErrCorrupt, elide.Quote(m.BackupID))
	}
	return &m, nil
}

// compare checks what was read against the manifest, naming the first
// difference.
func (m *Manifest) compare(seen []ManifestFile) error {
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Name] = true
	}
	for _, f := range seen {
		if !listed[f.Name] {
			return fmt.Errorf("%w: file %s is not in the manifest", ErrUnexpectedMember, f.Name)
		}
	}
	got := map[string]ManifestFile{}
	for _, f := range seen {
		got[f.Name] = f
	}
	for _, want := range m.Files {
		have, ok := got[want.Name]
		if !ok {
			return fmt.Errorf("%w: file %s (%d chunks) is missing", ErrIncomplete, want.Name, len(want.Chunks))
		}
		if len(have.Chunks) < len(want.Chunks) {
			return fmt.Errorf("%w: file %s has %d of its %d chunks", ErrIncomplete, want.Name, len(have.Chunks), len(want.Chunks))
		}
		if len(have.Chunks) > len(want.Chunks) {
			return fmt.Errorf("%w: file %s has %d chunks, the manifest lists %d", ErrUnexpectedMember, want.Name, len(have.Chunks), len(want.Chunks))
		}
		for i, c := range want.Chunks {
			if have.Chunks[i] != c {
				return fmt.Errorf("%w: chunk %s differs from the manifest", ErrCorrupt, ChunkName(want.Name, i))
			}
		}
	}
	for i := range seen {
		if seen[i].Name != m.Files[i].Name {
			return fmt.Errorf("%w: file %s is out of order", ErrUnexpectedMember, seen[i].Name)
		}
	}
	return nil
}
