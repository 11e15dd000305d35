package testutil

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// legacy-backup.sh puts the HMAC together from two `openssl dgst` passes
// (so that the passphrase stays out of process arguments); it must be
// the HMAC `openssl dgst -hmac` computes, for keys shorter and longer
// than the digest's block.
func TestLegacyHMAC(t *testing.T) {
	for _, tool := range legacyTools {
		RequireTool(t, tool)
	}
	msg := []byte(strings.Repeat("stored chunk \x00\xff ", 1000))
	for _, pass := range []string{"correct horse battery", "", strings.Repeat("long passphrase ", 20)} {
		for algo, h := range map[string]func() hash.Hash{"sha512": sha512.New, "sha1": sha1.New, "md5": md5.New, "sha256": sha256.New, "sha384": sha512.New384} {
			w := NewLegacyWriter(t, []byte(pass), LegacyOptions{Version: 3, Digest: algo})
			if err := os.WriteFile(filepath.Join(w.Stage, "f"), msg, 0o644); err != nil {
				t.Fatal(err)
			}
			w.run("hmac", "F=f", "ALGO="+algo)
			got, err := os.ReadFile(filepath.Join(w.Stage, "f.hmac"))
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(h, []byte(pass))
			m.Write(msg)
			if want := "(stdin)= " + hex.EncodeToString(m.Sum(nil)) + "\n"; string(got) != want {
				t.Errorf("%s, key of %d bytes: %q, want %q", algo, len(pass), got, want)
			}
		}
	}
}
