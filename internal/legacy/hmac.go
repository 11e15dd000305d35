package legacy

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"pedos.dev/backup/internal/elide"
)

// Formats 2 and 3 authenticate every member with the text that `openssl
// dgst -<algo> -hmac <passphrase>` prints: HMAC keyed with the plain
// passphrase, in lower-case hex after a label that depends on the OpenSSL
// version ("(stdin)= ", "SHA2-512(stdin)= ", "HMAC-SHA512(stdin)= ").

// maxHMACSize is the reference reader's cap on any .hmac member.
const maxHMACSize = 4096

// digest is an HMAC hash function by its OpenSSL name.
type digest struct {
	name string
	new  func() hash.Hash
}

// digests are the OpenSSL digests Go implements, in the order they are
// tried when a header has to be authenticated before its algorithm is
// known: the reference writers' SHA512 and SHA1 first.
var digests = []digest{
	{"sha512", sha512.New},
	{"sha1", sha1.New},
	{"sha256", sha256.New},
	{"sha384", sha512.New384},
	{"sha224", sha256.New224},
	{"sha512-224", sha512.New512_224},
	{"sha512-256", sha512.New512_256},
	{"sha3-224", func() hash.Hash { return sha3.New224() }},
	{"sha3-256", func() hash.Hash { return sha3.New256() }},
	{"sha3-384", func() hash.Hash { return sha3.New384() }},
	{"sha3-512", func() hash.Hash { return sha3.New512() }},
	// OpenSSL 1.0's default digest: what `openssl dgst -hmac` without an
	// algorithm, as R2-beta3 ran it, produced there.
	{"md5", md5.New},
}

// digestByName finds a header's hmac-algorithm, which OpenSSL accepts in
// any case and, since 3.0, also as "SHA2-512".
func digestByName(name string) (digest, error) {
	n := strings.ToLower(name)
	if rest, ok := strings.CutPrefix(n, "sha2-"); ok {
		n = "sha" + rest
	}
	for _, d := range digests {
		if d.name == n {
			return d, nil
		}
	}
	return digest{}, fmt.Errorf("%w: HMAC algorithm %s", ErrUnsupported, elide.Quote(name))
}

// parseHMAC takes the hex digest out of a .hmac member: ASCII text whose
// part after the first '=' is the digest.
func parseHMAC(name string, text []byte) ([]byte, error) {
	if len(text) > maxHMACSize {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrCorrupt, name, len(text), maxHMACSize)
	}
	if strings.HasPrefix(string(text), "scrypt") {
		return nil, fmt.Errorf("%w: %s is scrypt data: a format 4 archive, for package archive", ErrUnsupported, name)
	}
	_, hexPart, ok := strings.Cut(string(text), "=")
	mac, err := hex.DecodeString(strings.TrimSpace(hexPart))
	if !ok || err != nil || len(mac) < 16 {
		return nil, fmt.Errorf("%w: %s is not an `openssl dgst -hmac` output", ErrCorrupt, name)
	}
	return mac, nil
}

// sum is the HMAC of data under key with d.
func (d digest) sum(key, data []byte) []byte {
	m := hmac.New(d.new, key)
	m.Write(data)
	return m.Sum(nil)
}

// verify reports whether mac is data's HMAC under key (in constant time).
func (d digest) verify(key, data, mac []byte) bool {
	return hmac.Equal(d.sum(key, data), mac)
}

// findDigest returns the first digest under which mac authenticates data;
// the reference reader, too, tries every algorithm until one matches.
func findDigest(key, data, mac []byte) (digest, bool) {
	for _, d := range digests {
		if d.new().Size() == len(mac) && d.verify(key, data, mac) {
			return d, true
		}
	}
	return digest{}, false
}
