package legacy

import (
	"bufio"
	"bytes"
	"testing"
)

// Format 2: every file a GNU multi-volume tar (40 KiB volumes here, so
// sparse images and the template span several), each volume a chunk of
// its own: encrypted, gzipped, zlib inside the encryption, or plain; with
// the 2014 header (no version) or no header at all.
func TestFormat2(t *testing.T) {
	requireTools(t)
	fx := newFixture(t)
	for _, tc := range []struct {
		name              string
		encrypt, compress bool
		header            bool
		digest            string
		l                 layout
		want              Header
	}{
		{name: "header+encrypted", encrypt: true, header: true, digest: "sha1", l: hiddenLayout(),
			want: Header{Version: 2, Encrypted: true, HMACAlgorithm: "sha1", CryptoAlgorithm: "aes-256-cbc"}},
		{name: "header+gzip", compress: true, header: true, digest: "sha1", l: hiddenLayout(),
			want: Header{Version: 2, Compressed: true, Compression: "gzip", HMACAlgorithm: "sha1"}},
		{name: "header+plain", header: true, digest: "sha512", l: readableLayout(),
			want: Header{Version: 2, HMACAlgorithm: "sha512"}},
		// R2-beta3 ran `openssl dgst -hmac` without a digest: MD5 on OpenSSL 1.0.
		{name: "no header, encrypted", encrypt: true, digest: "md5", l: readableLayout(),
			want: Header{Version: 2, Encrypted: true, HMACAlgorithm: "md5", CryptoAlgorithm: "aes-256-cbc", NoHeader: true}},
		{name: "no header, encrypted -z", encrypt: true, compress: true, digest: "md5", l: hiddenLayout(),
			want: Header{Version: 2, Encrypted: true, Compressed: true, Compression: "zlib", HMACAlgorithm: "md5", CryptoAlgorithm: "aes-256-cbc", NoHeader: true}},
		{name: "no header, gzip", compress: true, digest: "sha1", l: readableLayout(),
			want: Header{Version: 2, Compressed: true, Compression: "gzip", HMACAlgorithm: "sha1", NoHeader: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 2)
			b.Encrypt, b.Compress, b.Digest = tc.encrypt, tc.compress, tc.digest
			b.NoHeader = !tc.header
			archive := b.backup(fx, tc.l)
			if n := countMembers(b, tc.l.work+"/private.img."); n < 4 {
				t.Fatalf("private.img has %d volumes; the test wants several", n)
			}

			v, err := Detect(bufio.NewReader(bytes.NewReader(archive)))
			if err != nil || v != 2 {
				t.Fatalf("Detect = %d, %v; want 2", v, err)
			}
			out := t.TempDir()
			r, err := readAll(t, archive, Options{Passphrase: []byte(testPass)}, out)
			if err != nil {
				t.Fatal(err)
			}
			if r.Header() != tc.want {
				t.Errorf("Header() = %+v, want %+v", r.Header(), tc.want)
			}
			checkRecovered(t, fx, tc.l, out, 2)
			checkPaths(t, r.QubesXML(), map[string]string{"work": tc.l.work + "/", "fedora-23": tc.l.tpl + "/", "dom0": "dom0-home/user"})
		})
	}
}

// countMembers counts the chunks whose names start with prefix.
func countMembers(b *builder, prefix string) int {
	n := 0
	for _, s := range b.Spans {
		if len(s.Name) > len(prefix) && s.Name[:len(prefix)] == prefix && s.Name[len(s.Name)-5:] != ".hmac" {
			n++
		}
	}
	return n
}
